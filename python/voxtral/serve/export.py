"""`voxtral serve --export DIR`: the app as a static folder, for any static file server.

The page needs nothing dynamic: /api/info becomes a file, /py/voxtral.zip is written once, the
Pyodide runtime and the model shards are linked (or copied) in. Used to run the page where
`voxtral serve` cannot (e.g. gpu-browser's run_page.py, which serves one folder and collects the
benchmark mode's result), and to host the app on a plain web server.
"""
from __future__ import annotations

import json
import os
import shutil

from voxtral.errors import VoxtralError
from voxtral.serve.app import ServerConfig, site_info
from voxtral.serve.pkgzip import PackageZip


def _place(src: str, dst: str, link: bool) -> None:
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if os.path.lexists(dst):
        if os.path.isdir(dst) and not os.path.islink(dst):
            shutil.rmtree(dst)
        else:
            os.remove(dst)
    if link:
        os.symlink(os.path.abspath(src), dst)
    elif os.path.isdir(src):
        shutil.copytree(src, dst)
    else:
        shutil.copy2(src, dst)


def export_site(cfg: ServerConfig, out_dir: str, link: bool = True) -> list[str]:
    """Write the static site into out_dir; returns the top-level entries written. link: symlink the
    Pyodide runtime and the shards (large) instead of copying them."""
    if not os.path.isfile(os.path.join(cfg.web_dir, "index.html")):
        raise VoxtralError(f"the browser app is not at {cfg.web_dir}: run from a checkout (pip install -e .)")
    if not cfg.pyodide_ready:
        raise VoxtralError(f"the Pyodide runtime is missing from {cfg.pyodide_dir}: run "
                           "`python scripts/fetch_web_assets.py` first")
    os.makedirs(out_dir, exist_ok=True)
    for name in sorted(os.listdir(cfg.web_dir)):  # the page's own files: small, copied
        src = os.path.join(cfg.web_dir, name)
        if os.path.isfile(src):
            _place(src, os.path.join(out_dir, name), link=False)
    os.makedirs(os.path.join(out_dir, "api"), exist_ok=True)
    with open(os.path.join(out_dir, "api", "info"), "w", encoding="utf-8") as f:
        json.dump(site_info(cfg), f, indent=1)
    os.makedirs(os.path.join(out_dir, "py"), exist_ok=True)
    data, _ = PackageZip(shaders_dir=cfg.shaders_dir if os.path.isdir(cfg.shaders_dir) else None).get()
    with open(os.path.join(out_dir, "py", "voxtral.zip"), "wb") as f:
        f.write(data)
    _place(cfg.pyodide_dir, os.path.join(out_dir, "pyodide"), link)
    for m in cfg.models:
        for s in m.shards:
            _place(s.path, os.path.join(out_dir, "models", m.id, s.name), link)
        for name in m.side_files:
            _place(os.path.join(m.dir, name), os.path.join(out_dir, "models", m.id, name), link)
    return sorted(os.listdir(out_dir))
