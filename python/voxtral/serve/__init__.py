"""`voxtral serve`: the HTTPS dev server for the browser app (web/), see app.py for the URL space.

    voxtral serve [--host 127.0.0.1] [--port 8443] [--models DIR]
    voxtral serve --export DIR [--models DIR] [--no-demo] [--copy]     (the same app as static files)

Creates a self-signed certificate on first run (kept in ~/.local/share/voxtral/tls/), offers the
model shards found under --models (or a generated random-weight demo model, said plainly), and
serves the Pyodide runtime fetched by scripts/fetch_web_assets.py. Nothing is fetched from outside.
"""
from __future__ import annotations

import os
import sys


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def build_config(models_dir: str, data_dir: str | None = None, log=_log, allow_demo: bool = True):
    from voxtral.serve.app import ServerConfig, default_assets_dir, repo_root
    from voxtral.serve.models import discover_models
    from voxtral.serve.tls import data_dir as default_data_dir
    from voxtral.model_paths import ASR

    root = repo_root()
    models = discover_models(models_dir, data_dir or default_data_dir(), log, allow_demo=allow_demo)
    return ServerConfig(web_dir=os.path.join(root, "web"), shaders_dir=os.path.join(root, "shaders"),
                        pyodide_dir=os.path.join(default_assets_dir(root), "pyodide"), models=models,
                        how_to_get_weights=ASR.how_to_get.replace(
                            "or pass --model PATH", "or start `voxtral serve --models DIR`"))


def _cmd_serve(args) -> int:
    import asyncio

    from aiohttp import web

    from voxtral.errors import VoxtralError
    from voxtral.serve.app import make_app
    from voxtral.serve.tls import ensure_certificate, server_ssl_context
    from voxtral.model_paths import models_dir

    mdir = args.models or models_dir()
    if args.export:
        from voxtral.serve.export import export_site
        cfg = build_config(mdir, allow_demo=not args.no_demo)
        entries = export_site(cfg, args.export, link=not args.copy)
        _log(f"voxtral serve: wrote the app as static files to {args.export} ({', '.join(entries)}); "
             f"{len(cfg.models)} model(s)")
        return 0
    cfg = build_config(mdir)
    if not os.path.isfile(os.path.join(cfg.web_dir, "index.html")):
        raise VoxtralError(f"the browser app is not at {cfg.web_dir}: run from a checkout (pip install -e .)")
    cert, key, created = ensure_certificate(hosts=(args.host,))
    _log(f"voxtral serve: {'created' if created else 'using'} self-signed certificate {cert}")
    if not cfg.pyodide_ready:
        _log(f"voxtral serve: WARNING: the Pyodide runtime is missing from {cfg.pyodide_dir}; "
             "run `python scripts/fetch_web_assets.py` (scripts/setup.sh does) - the page cannot run without it")
    for m in cfg.models:
        _log(f"voxtral serve: model {m.id} ({m.kind}{', DEMO' if m.demo else ''}): "
             f"{len(m.shards)} shard(s), {m.total_size / 1e6:.1f} MB")
    if any(m.demo and m.kind == "asr" for m in cfg.models):
        _log(f"voxtral serve: NOTE: no usable real weights under {mdir}/ (looked for voxtral-q4-shards/, "
             "voxtral-tts-q4-shards/); offering a RANDOM-WEIGHT DEMO MODEL: its transcripts are noise.")
        for line in cfg.how_to_get_weights.splitlines():
            _log("voxtral serve: " + line)
    if any(m.demo and m.kind == "tts" for m in cfg.models):
        from voxtral.serve.models import HOW_TO_GET_TTS_SHARDS
        _log(f"voxtral serve: NOTE: no usable TTS weights under {mdir}/ (looked for voxtral-tts-q4-shards/); "
             "offering a RANDOM-WEIGHT TTS DEMO MODEL: its speech is noise.")
        for line in HOW_TO_GET_TTS_SHARDS.splitlines():
            _log("voxtral serve: " + line)
    app = make_app(cfg)

    async def run() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, args.host, args.port, ssl_context=server_ssl_context(cert, key))
        try:
            await site.start()
        except OSError as e:
            await runner.cleanup()
            raise VoxtralError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
        port = site._server.sockets[0].getsockname()[1]
        host = args.host if ":" not in args.host else f"[{args.host}]"
        shown = "localhost" if args.host in ("127.0.0.1", "::1", "localhost") else host
        _log(f"voxtral serve: open https://{shown}:{port}/ (self-signed certificate: accept it once; "
             "Ctrl-C stops)")
        print(f"serving https://{host}:{port}/", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        _log("voxtral serve: stopped")
    return 0


def register(sub) -> None:
    s = sub.add_parser("serve", help="run the browser app's HTTPS dev server",
                       description="Serve the browser app (Pyodide worker, microphone and file "
                                   "transcription) over HTTPS with a self-signed certificate, plus the "
                                   "model shards with HTTP Range. Binds 127.0.0.1 unless --host says otherwise.")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=8443, help="port (default 8443; 0 picks a free one)")
    s.add_argument("--models", default=None, help="folder with voxtral-q4-shards/ etc. (default ./models "
                                                  "or $VOXTRAL_MODELS)")
    s.add_argument("--export", metavar="DIR", help="write the app as static files to DIR and exit "
                                                   "(any static server can then host it)")
    s.add_argument("--no-demo", action="store_true", help="with --export: include only real models found "
                                                          "under --models, no generated demo model")
    s.add_argument("--copy", action="store_true", help="with --export: copy the Pyodide runtime and the "
                                                       "shards instead of linking them")
    s.set_defaults(func=_cmd_serve)
