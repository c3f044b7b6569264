#!/usr/bin/env python3
"""Minimal token server for the Docker registry token auth flow (test fixture).

usage: token-server.py --key KEY.pem --cert CERT.pem --issuer ISSUER
                       --service SERVICE --users FILE --port-file FILE

Listens on 127.0.0.1 (ephemeral port, written to --port-file once listening).
GET /token?service=S&scope=repository:NAME:pull,push (scope may repeat):
  - with a valid "Authorization: Basic" (user:password from --users, one per
    line) the requested actions are granted;
  - for a --read-only user only the pull actions are granted;
  - with bad credentials: 401;
  - without credentials: a valid token granting nothing (anonymous), so the
    registry answers 401 for protected repositories.
POST /token (OAuth2 password grant, form fields username/password/scope/
service) is handled the same way, for clients that try it first; with
grant_type=refresh_token, the refresh_token (an identity token, given with
--refresh-token TOKEN=USER) stands for its user, and an unknown one gets
OAuth2's 400 invalid_grant.
Tokens are RS256 JWTs with a libtrust "kid" for the key of --cert, which
docker-registry 2.x looks up among the keys of its auth.token.rootcertbundle.
Signing shells out to `openssl dgst -sha256 -sign` (PKCS#1 v1.5 = RS256).
Stdlib only.
"""

import argparse
import base64
import binascii
import datetime
import hashlib
import http.server
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.parse

TTL = 300


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def libtrust_key_id(cert_path: str) -> str:
    """base32(sha256(DER SubjectPublicKeyInfo)[:30]), unpadded, in 4-char
    groups joined by ':' -- how libtrust names keys, and so what the registry
    matches a JWT's "kid" against."""
    pem = subprocess.run(
        ["openssl", "x509", "-in", cert_path, "-noout", "-pubkey"],
        check=True, capture_output=True).stdout
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "DER"],
        input=pem, check=True, capture_output=True).stdout
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i:i + 4] for i in range(0, len(b32), 4))


def load_users(path: str) -> dict:
    users = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\r\n")
            if line and not line.startswith("#") and ":" in line:
                user, password = line.split(":", 1)
                users[user] = password
    return users


def parse_scopes(scopes):
    """'repository:NAME:pull,push' -> [{type, name, actions}]. NAME may itself
    contain ':' (host:port/...), so split the type off the front and the
    actions off the back."""
    access = []
    for scope in scopes:
        for item in scope.split(" "):  # OAuth2 form joins scopes with spaces
            if item.count(":") < 2:
                continue
            kind, rest = item.split(":", 1)
            name, actions = rest.rsplit(":", 1)
            access.append({"type": kind, "name": name,
                           "actions": [a for a in actions.split(",") if a]})
    return access


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "hull-token-server/1"
    cfg = None  # set in main()

    def log_message(self, fmt, *args):  # one line per request, to stderr
        sys.stderr.write("token-server: %s %s\n" % (self.address_string(), fmt % args))

    def reply(self, code, body, extra_headers=()):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra_headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def basic_user(self):
        """None: no credentials; False: bad ones; else the user name."""
        auth = self.headers.get("Authorization", "")
        if not auth.lower().startswith("basic "):
            return None
        try:
            user, password = base64.b64decode(auth[6:].strip()).decode().split(":", 1)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return False
        return user if self.cfg.users.get(user) == password else False

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/token":
            return self.reply(404, {"error": "not found"})
        q = urllib.parse.parse_qs(url.query)
        user = self.basic_user()
        if user is False:
            return self.unauthorized()
        self.issue(user, q.get("service", [""])[0], q.get("scope", []))

    def do_POST(self):
        if urllib.parse.urlsplit(self.path).path != "/token":
            return self.reply(404, {"error": "not found"})
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        if form.get("grant_type", [""])[0] == "refresh_token":
            user = self.cfg.refresh.get(form.get("refresh_token", [""])[0])
            if not user or not form.get("client_id"):
                # As OAuth2 servers answer (RFC 6749 5.2).
                return self.reply(400, {"error": "invalid_grant"})
            return self.issue(user, form.get("service", [""])[0], form.get("scope", []))
        user = self.basic_user()
        if user is False:
            return self.unauthorized()
        if user is None and "username" in form:
            name, password = form["username"][0], form.get("password", [""])[0]
            if self.cfg.users.get(name) != password:
                return self.unauthorized()
            user = name
        self.issue(user, form.get("service", [""])[0], form.get("scope", []))

    def unauthorized(self):
        self.reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]},
                   [("WWW-Authenticate", 'Basic realm="hull-test-token"')])

    def granted(self, user, scopes):
        """What a token grants: nothing to anonymous callers, only pull to
        --read-only users, else what was asked for."""
        if not user:
            return []
        access = parse_scopes(scopes)
        if user in self.cfg.read_only:
            for a in access:
                a["actions"] = [x for x in a["actions"] if x == "pull"]
        return access

    def issue(self, user, service, scopes):
        cfg = self.cfg
        if service and service != cfg.service:
            return self.reply(400, {"error": "unknown service %r" % service})
        now = int(time.time())
        claims = {
            "iss": cfg.issuer,
            "sub": user or "",
            "aud": cfg.service,
            "exp": now + TTL,
            "nbf": now - 1,
            "iat": now,
            "jti": secrets.token_hex(16),
            # Anonymous callers get a valid token that grants nothing.
            "access": self.granted(user, scopes),
        }
        header = {"typ": "JWT", "alg": "RS256", "kid": cfg.kid}
        signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "." +
                         b64url(json.dumps(claims, separators=(",", ":")).encode()))
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", cfg.key],
                             input=signing_input.encode(), check=True,
                             capture_output=True).stdout
        token = signing_input + "." + b64url(sig)
        issued = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
        self.reply(200, {"token": token, "access_token": token, "expires_in": TTL,
                         "issued_at": issued.strftime("%Y-%m-%dT%H:%M:%SZ")})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--key", required=True, help="RSA private key (PEM)")
    ap.add_argument("--cert", required=True, help="certificate of that key (PEM)")
    ap.add_argument("--issuer", required=True)
    ap.add_argument("--service", required=True)
    ap.add_argument("--users", required=True, help="file of user:password lines")
    ap.add_argument("--read-only", action="append", default=[],
                    help="a user (of --users) granted only pull, whatever is asked")
    ap.add_argument("--refresh-token", action="append", default=[],
                    help="TOKEN=USER: an identity token for USER (refresh-token grant)")
    ap.add_argument("--port-file", required=True)
    cfg = ap.parse_args()
    cfg.refresh = dict(t.split("=", 1) for t in cfg.refresh_token)
    cfg.kid = libtrust_key_id(cfg.cert)
    cfg.users = load_users(cfg.users)
    Handler.cfg = cfg

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # Write the port atomically: serve.sh polls for this file.
    tmp = cfg.port_file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("%d\n" % srv.server_address[1])
    os.replace(tmp, cfg.port_file)
    sys.stderr.write("token-server: listening on 127.0.0.1:%d kid=%s\n"
                     % (srv.server_address[1], cfg.kid))
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
