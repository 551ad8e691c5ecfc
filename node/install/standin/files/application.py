#!/usr/bin/env python3
# Stand-in, not the real ElasticHQ: serves a page on --host/--port with
# python3's http.server, as the real application.py takes those options.
import argparse
import http.server
import socket

parser = argparse.ArgumentParser(description="stand-in ElasticHQ")
parser.add_argument("-H", "--host", default="0.0.0.0")
parser.add_argument("-P", "--port", type=int, default=5000)
opts, _ = parser.parse_known_args()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        data = b"<html><body>stand-in ElasticHQ, not the real application</body></html>\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6 if ":" in opts.host else socket.AF_INET


Server((opts.host, opts.port), Handler).serve_forever()
