import os
import shutil
import sys
import threading

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from harness.server import Server  # noqa: E402


def _strict():
    """Under CI (`CI` set) or `./dev.sh test` (`KEEPD_TESTS_STRICT=1`) a
    differential test that cannot run is a failure, not a skip."""
    def on(k):
        v = os.environ.get(k, "")
        return v not in ("", "0") and v.lower() != "false"
    return on("CI") or on("KEEPD_TESTS_STRICT")


def _bin(var):
    b = os.environ.get(var, "")
    if not b:
        return None
    if os.sep not in b:
        b = shutil.which(b) or b
    return b


@pytest.fixture(scope="session")
def binaries():
    ref, sut = _bin("PB_BIN"), _bin("KEEPD_BIN")
    missing = [n for n, b in (("PB_BIN", ref), ("KEEPD_BIN", sut)) if not b or not os.path.exists(b)]
    if missing:
        msg = f"set {' and '.join(missing)} to existing binaries"
        if _strict():
            pytest.fail(f"cannot run the differential tests: {msg} "
                        "(under CI a skipped test would pass unseen)", pytrace=False)
        pytest.skip(msg)
    return ref, sut


@pytest.fixture
def servers(binaries, tmp_path_factory):
    base = str(tmp_path_factory.mktemp("srv"))
    ref, sut = Server("pb", binaries[0], base), Server("keepd", binaries[1], base)
    errors = []

    def start(s):
        try:
            s.start()
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=start, args=(s,)) for s in (ref, sut)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        if errors:
            pytest.fail("server start failed:\n" + "\n".join(map(str, errors)), pytrace=False)
        yield ref, sut
    finally:
        ref.stop()
        sut.stop()
