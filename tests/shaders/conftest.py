"""One WebGPU device for the whole tests/shaders session; the folder is skipped (with the reason)
when wgpu-py or a WebGPU adapter is missing. On CI the lavapipe Vulkan adapter is installed
(mesa-vulkan-drivers), so these tests run there."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
# One random base seed per session, shared with the tests through the environment; set it to
# replay a failing run (the summary prints it).
os.environ.setdefault("VOXTRAL_TEST_SEED", str(int.from_bytes(os.urandom(4), "little")))

_SKIP_REASON = None
try:
    import wgpu  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the machine
    _SKIP_REASON = f"wgpu-py is not installed ({exc}); pip install wgpu==0.32.0"


def pytest_collection_modifyitems(config, items):
    if _SKIP_REASON is None:
        return
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.skip(reason=_SKIP_REASON))


@pytest.fixture(scope="session")
def host():
    from voxtral.backends.webgpu.wgpu_host import NoAdapterError, WgpuHost

    try:
        return WgpuHost()
    except NoAdapterError as exc:
        pytest.skip(f"no WebGPU adapter: {exc} (apt-get install mesa-vulkan-drivers libvulkan1)")
    except Exception as exc:  # wgpu raises its own errors when no backend can start
        pytest.skip(f"no WebGPU adapter could be created: {type(exc).__name__}: {exc}")


# ------------------------------------------------------------- measured-error summary
_MEASURED: dict[str, float] = {}


@pytest.fixture(scope="session")
def record_error():
    """record_error(kernel_name, err): keeps the worst error per kernel for the final summary."""
    def record(name: str, err: float) -> None:
        _MEASURED[name] = max(err, _MEASURED.get(name, 0.0))
    return record


def pytest_terminal_summary(terminalreporter):
    if _MEASURED:
        terminalreporter.section("WGSL kernels: worst measured error vs float64 numpy")
        terminalreporter.write_line(f"replay with VOXTRAL_TEST_SEED={os.environ['VOXTRAL_TEST_SEED']}")
        for name in sorted(_MEASURED):
            terminalreporter.write_line(f"{name:28s} {_MEASURED[name]:.3g}")
