"""`make serve MODEL=...`: the real `mlflow models serve` behind real nginx (scripts/serve.sh),
called over HTTP on 127.0.0.1. What MLflow's scoring server alone parses first and fails on (a
200 MB body, JSON nested deep, no Content-Type, an unknown param) is refused by nginx with a 4xx
that says why; a saturated server answers or refuses a normal request within 3 s, and every 503
says when to come back. Skipped only where nginx's Lua module is not installed (.ci/run installs
it)."""

import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.generator import NAME, check_texts, generator_store
from tests.support.project import ROOT, clean_environment
from tests.support.servers import free_port

STARTUP_S = 300  # loading TensorFlow and the model takes minutes on a busy 2-core machine
MAX_IN_FLIGHT = 8  # SERVE_MAX_IN_FLIGHT here: room for the load test's 7 requests at once
ACCEPTED = "length, temperature, top_k, top_p, seed, timeout_s"  # the signature's params
BIG = {"dataframe_records": [{"prompt": "ab"}] * 10, "params": {"length": 99_000}}
NORMAL = {"dataframe_records": [{"prompt": "abc"}], "params": {"length": 20}}

pytestmark = pytest.mark.skipif(
    not (shutil.which("nginx") or os.path.exists("/usr/sbin/nginx"))
    or not os.path.exists("/usr/lib/nginx/modules/ngx_http_lua_module.so")
    or not glob.glob("/usr/lib/*/lua/5.1/cjson.so"),
    reason="nginx with its Lua module is not installed: `apt-get install nginx "
    "libnginx-mod-http-lua lua-cjson` to run these (.ci/run installs them)",
)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    """`make serve` on a free port for the module, as a user runs it; Ctrl-C at the end."""
    folder = tmp_path_factory.mktemp("serve")
    with generator_store(folder) as store:
        port = free_port()
        env = clean_environment(
            MLFLOW_TRACKING_URI=store,
            MODEL=f"models:/{NAME}/1",
            SERVE_PORT=str(port),
            SERVE_MAX_IN_FLIGHT=str(MAX_IN_FLIGHT),
        )
        log_path = folder / "console.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                ["make", "--no-print-directory", "serve"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + STARTUP_S
            while b"/invocations (params: " not in log_path.read_bytes():
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"make serve did not start:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.5)
            yield f"http://127.0.0.1:{port}"
        finally:
            stop(process, log_path)
    assert b"serve: stopped" in log_path.read_bytes()


def stop(process: subprocess.Popen[bytes], log_path: Path) -> None:
    """Ctrl-C to the process group, as a user stops it; wait for the script's own clean-up."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    deadline = time.monotonic() + 60
    while b"serve: stopped" not in log_path.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def post(url: str, body: object, **headers: str) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **headers}
    return requests.post(f"{url}/invocations", data=data, headers=headers, timeout=90)


def test_a_request_is_answered_through_the_proxy(server):
    response = post(server, {**NORMAL, "params": {"length": 30, "seed": 3}})
    assert response.status_code == 200, response.text
    check_texts([row["text"] for row in response.json()["predictions"]], 30)
    assert requests.get(f"{server}/ping", timeout=10).status_code == 200


def test_a_200_mb_body_is_refused_before_a_byte_of_it_is_sent(server):
    """Only the headers go out: the 413 comes back without the body, so nothing parsed it."""
    port = int(server.rsplit(":", 1)[1])
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 200000000\r\n\r\n"
        )
        answer = connection.recv(65536).decode()
    assert answer.startswith("HTTP/1.1 413"), answer[:300]
    assert "over the 8 MB this server accepts" in answer
    assert time.monotonic() - started < 3


def test_a_chunked_body_is_cut_off_at_the_cap(server):
    def chunks() -> Iterator[bytes]:
        yield b'{"dataframe_records": [{"prompt": "'
        for _ in range(100):  # 100 MB unless refused
            yield b"a" * 1_000_000

    response = requests.post(
        f"{server}/invocations",
        data=chunks(),
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 413
    assert "over the 8 MB" in response.json()["message"]


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        (
            b'{"dataframe_records": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            {},
            400,
            "the JSON body is nested more than 16 levels deep",
        ),
        (
            json.dumps(NORMAL).encode(),
            {"Content-Type": ""},
            415,
            "the request has no Content-Type header",
        ),
        (b'{"dataframe_records": [{"prompt": "ab"}', {}, 400, "the body is not valid JSON"),
        (
            {**NORMAL, "params": {"lenght": 5}},
            {},
            400,
            f"unknown param 'lenght'; accepted: {ACCEPTED}",
        ),
        (
            {"dataframe_records": [{"prompt": "ab"}], "parmas": {"length": 5}},
            {},
            400,
            "unknown key 'parmas' in the body; accepted: dataframe_records",
        ),
        ({**NORMAL, "params": [1]}, {}, 400, "params must be a JSON object"),
        (b"[1, 2]", {}, 400, "the body must be a JSON object"),
    ],
    ids=[
        "nested",
        "no-content-type",
        "truncated",
        "unknown-param",
        "unknown-key",
        "params-list",
        "list",
    ],
)
def test_a_malformed_request_gets_a_4xx_that_says_why(server, body, headers, status, message):
    response = post(server, body, **headers)
    assert response.status_code == status, response.text[:500]
    assert message in response.json()["message"]
    assert "Traceback" not in response.text


def test_the_model_still_checks_what_it_owns(server):
    """Known params with bad values pass nginx and are the model's 400, as without the proxy."""
    response = post(server, {**NORMAL, "params": {"length": 0}})
    assert response.status_code == 400
    assert "length must be between 1 and" in response.json()["message"]


def test_a_saturated_server_answers_a_normal_request_within_3_s(server):
    """Six big in-bounds requests at once (the audit's load): the model takes two, refuses the
    rest at once with 503 + Retry-After, and a normal request is answered beside them."""
    big = {**BIG, "params": {**BIG["params"], "timeout_s": 15.0}}  # the admitted two stop at 15 s
    # Once idle first: XLA compiles each new request shape once (seconds on a busy machine).
    assert post(server, NORMAL).status_code == 200
    answers: list[requests.Response] = []
    threads = [threading.Thread(target=lambda: answers.append(post(server, big))) for _ in range(6)]
    for thread in threads:
        thread.start()
    time.sleep(2)  # all six are in: refused or generating
    timings = []
    for _ in range(3):
        started = time.monotonic()
        normal = post(server, NORMAL)
        timings.append(time.monotonic() - started)
        assert normal.status_code in (200, 503), normal.text[:300]
        if normal.status_code == 503:
            assert normal.headers["Retry-After"] == "5"
    for thread in threads:
        thread.join()
    assert max(timings) < 3, timings
    statuses = sorted(answer.status_code for answer in answers)
    refused = [answer for answer in answers if answer.status_code == 503]
    assert len(refused) >= 4, statuses
    for answer in refused:
        assert answer.headers["Retry-After"] == "5"
        assert "the server is busy" in answer.json()["message"]
    assert post(server, NORMAL).status_code == 200  # and it is free again afterwards


def test_past_the_in_flight_limit_nginx_refuses_with_retry_after(server):
    """Connections that sent their headers but not their bodies count as in flight."""
    port = int(server.rsplit(":", 1)[1])
    held = []
    try:
        for _ in range(MAX_IN_FLIGHT):
            connection = socket.create_connection(("127.0.0.1", port), timeout=10)
            connection.sendall(
                b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            )
            held.append(connection)
        time.sleep(0.5)
        started = time.monotonic()
        response = post(server, NORMAL)
        assert time.monotonic() - started < 3
        assert response.status_code == 503, response.text[:300]
        assert response.headers["Retry-After"] == "5"
        assert "retry after 5 s" in response.json()["message"]
    finally:
        for connection in held:
            connection.close()
    deadline = time.monotonic() + 10
    while post(server, NORMAL).status_code != 200:
        assert time.monotonic() < deadline, "the slots were not freed"
        time.sleep(0.5)
