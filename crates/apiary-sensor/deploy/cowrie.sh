#!/usr/bin/env bash
# Cowrie deploy script (template; {{SERVER_URL}} {{TOKEN}} {{HPF_HOST}} {{HPF_PORT}} filled
# in by the server). Installs Cowrie 3.1.4 + hpfeeds 3.1.0 from PyPI into a venv, registers
# the sensor once (kept in /etc/apiary-sensor/cowrie-registration.json), enables the
# hpfeeds3 output (channel cowrie.sessions) and starts Cowrie on port 2222 (a real sshd on
# 22 is never moved; redirect 22 -> 2222 yourself if wanted).
set -euo pipefail
SERVER_URL="{{SERVER_URL}}"; TOKEN="{{TOKEN}}"; HPF_HOST="{{HPF_HOST}}"; HPF_PORT="{{HPF_PORT}}"
ETC=/etc/apiary-sensor; HOME_DIR=/opt/cowrie; RUN_USER=cowrie
say() { printf '[apiary-deploy] %s\n' "$*"; }
die() { printf '[apiary-deploy] ERROR: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root"

if command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3 python3-venv curl ca-certificates
elif command -v dnf >/dev/null 2>&1; then dnf install -y -q python3 curl
elif command -v yum >/dev/null 2>&1; then yum install -y -q python3 curl
else die "no apt-get, dnf or yum"; fi

id "$RUN_USER" >/dev/null 2>&1 || useradd --system --create-home --home-dir "$HOME_DIR" --shell "$(command -v nologin || echo /sbin/nologin)" "$RUN_USER"
install -d -m 0750 "$ETC"
install -d -o "$RUN_USER" "$HOME_DIR" "$HOME_DIR/state"
if [ ! -x "$HOME_DIR/venv/bin/cowrie" ]; then
    python3 -m venv "$HOME_DIR/venv"
    "$HOME_DIR/venv/bin/pip" install -q 'cowrie==3.1.4' 'hpfeeds==3.1.0'
    say "installed cowrie 3.1.4 and hpfeeds 3.1.0 in $HOME_DIR/venv"
fi

json_field() { sed -n "s/.*\"$2\"[[:space:]]*:[[:space:]]*\"\([^\"]*\)\".*/\1/p" "$1" | head -n1; }
REG="$ETC/cowrie-registration.json"
if [ -s "$REG" ] && [ -n "$(json_field "$REG" uuid)" ]; then
    say "already registered as $(json_field "$REG" uuid)"
else
    H=$(hostname); tmp=$(mktemp)
    code=$(curl -sS -o "$tmp" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        -H "Authorization: Enrollment $TOKEN" \
        -d "{\"name\": \"$H-cowrie\", \"hostname\": \"$H\", \"deploy_key\": \"$TOKEN\", \"honeypot\": \"cowrie\"}" \
        "$SERVER_URL/api/sensor/") || code=000
    [ "$code" = 200 ] || [ "$code" = 201 ] || { cat "$tmp" >&2; die "registration failed (HTTP $code)"; }
    install -m 0600 "$tmp" "$REG"; rm -f "$tmp"
    say "created sensor: $(json_field "$REG" uuid)"
fi
IDENT=$(json_field "$REG" identifier); [ -n "$IDENT" ] || IDENT=$(json_field "$REG" uuid)
SECRET=$(json_field "$REG" secret)

# ./cowrie.cfg is the highest-priority config layer; `cowrie init` does not touch it.
cat > "$HOME_DIR/state/cowrie.cfg" <<CFG
[honeypot]
hostname = svr04
[ssh]
listen_endpoints = tcp:2222:interface=0.0.0.0
[output_hpfeeds3]
enabled = true
server = $HPF_HOST
port = $HPF_PORT
identifier = $IDENT
secret = $SECRET
channel = cowrie.sessions
CFG
chown "$RUN_USER" "$HOME_DIR/state/cowrie.cfg"; chmod 0600 "$HOME_DIR/state/cowrie.cfg"
say "wrote $HOME_DIR/state/cowrie.cfg (hpfeeds $HPF_HOST:$HPF_PORT, channel cowrie.sessions)"

if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    cat > /etc/systemd/system/cowrie.service <<UNIT
[Unit]
Description=Cowrie SSH honeypot (Apiary)
After=network-online.target
[Service]
User=$RUN_USER
WorkingDirectory=$HOME_DIR/state
Environment=PATH=$HOME_DIR/venv/bin:/usr/bin:/bin
Environment=COWRIE_STDOUT=yes
ExecStartPre=/bin/sh -c 'test -d var || $HOME_DIR/venv/bin/cowrie init'
ExecStart=$HOME_DIR/venv/bin/cowrie start
Restart=always
[Install]
WantedBy=multi-user.target
UNIT
    systemctl daemon-reload; systemctl enable cowrie.service >/dev/null 2>&1 || true; systemctl restart cowrie.service
    say "systemd unit cowrie.service (re)started"
else
    say "no systemd: starting cowrie in the background as $RUN_USER"
    su -s /bin/sh "$RUN_USER" -c "cd $HOME_DIR/state && PATH=$HOME_DIR/venv/bin:\$PATH; test -d var || cowrie init; COWRIE_STDOUT=yes nohup cowrie start >> $HOME_DIR/state/cowrie.out 2>&1 &"
fi
say "done"
