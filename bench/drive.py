#!/usr/bin/env python3
"""Sends exactly N requests over C keep-alive connections and checks each
answer's status (for bench/profile.sh: instruction counts per request need
an exact request count, which wrk does not give). With an eleventh
argument, a file of ids, one per line: each request's body has `@ID@`
replaced by the next unused id (W2: a different session each time)."""
import http.client, sys, threading

def main():
    host, port, method, path, token, body, n, conns, want = sys.argv[1:10]
    port, n, conns, want = int(port), int(n), int(conns), int(want)
    ids = iter(open(sys.argv[10]).read().split()) if len(sys.argv) > 10 else None
    lock = threading.Lock()
    headers = {"authorization": "Bearer " + token}
    if body:
        headers["content-type"] = "application/json"
    data = body.encode() if body else None
    bad = []
    def worker(k):
        try:
            send(k)
        except Exception as e:  # e.g. ids ran out: fewer requests than counted
            bad.append(("exception", repr(e)))
    def send(k):
        c = http.client.HTTPConnection(host, port)
        for _ in range(k):
            d = data
            if ids is not None:
                with lock:
                    d = body.replace("@ID@", next(ids)).encode()
            c.request(method, path, body=d, headers=headers)
            r = c.getresponse()
            out = r.read()
            if r.status != want or b'"errors"' in out:
                bad.append((r.status, out[:200]))
        c.close()
    per = [n // conns + (1 if i < n % conns else 0) for i in range(conns)]
    ts = [threading.Thread(target=worker, args=(k,)) for k in per]
    for t in ts: t.start()
    for t in ts: t.join()
    if bad:
        print(f"{len(bad)} bad responses, first: {bad[0]}", file=sys.stderr)
        sys.exit(1)

main()
