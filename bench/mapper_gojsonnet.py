"""go-jsonnet evaluations per second of the mapper benchmark's mapper and claims.

    python mapper_gojsonnet.py MAPPER CLAIMS EXPECTED SECONDS PROCESSES

Uses the `gojsonnet` PyPI package (go-jsonnet, the engine Ory Kratos embeds) the way Kratos calls
it: the claims passed as ext code (JSON text), the snippet evaluated from source on every call.
Runs PROCESSES processes for SECONDS each and prints `evals_per_sec=N`. Not part of CI.
"""

import json
import multiprocessing
import sys
import time

import _gojsonnet


def evaluate(source, claims):
    return _gojsonnet.evaluate_snippet("github.jsonnet", source, ext_codes={"claims": claims})


def run(source, claims, seconds, results):
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for _ in range(50):
            evaluate(source, claims)
        count += 50
    results.put(count / (time.perf_counter() - started))


def main():
    mapper_path, claims_path, expected_path, seconds, processes = sys.argv[1:]
    seconds, processes = float(seconds), int(processes)
    with open(mapper_path) as f:
        source = f.read()
    with open(claims_path) as f:
        claims = f.read()
    with open(expected_path) as f:
        expected = json.load(f)
    got = json.loads(evaluate(source, claims))
    if got != expected:
        sys.exit(f"go-jsonnet returned {got}, expected {expected}")
    # Not fork: the Go runtime inside _gojsonnet does not survive it (the child hangs).
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    workers = [
        ctx.Process(target=run, args=(source, claims, seconds, results))
        for _ in range(processes)
    ]
    for w in workers:
        w.start()
    # Each process reports its own rate over its own run; they run side by side.
    rate = sum(results.get() for _ in workers)
    for w in workers:
        w.join()
    print(f"evals_per_sec={rate:.0f}")


if __name__ == "__main__":
    main()
