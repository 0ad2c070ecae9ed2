"""Verifies webhook deliveries with the official Standard Webhooks library
(PyPI `standardwebhooks`), not the server's code: reads
{"secret": ..., "deliveries": [{"headers": {...}, "body": "..."}]} on
stdin and prints one line of JSON: for each delivery, true when its
signature verifies (with the library's own timestamp tolerance)."""
import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

request = json.load(sys.stdin)
hook = Webhook(request["secret"])
results = []
for delivery in request["deliveries"]:
    try:
        hook.verify(delivery["body"], delivery["headers"])
        results.append(True)
    except WebhookVerificationError:
        results.append(False)
print(json.dumps(results))
