#!/usr/bin/env bash
# Cowrie (SSH/Telnet honeypot) deploy script for Apiary (template; the server fills in
# {{SERVER_URL}}, {{TOKEN}}, {{HPF_HOST}} and {{HPF_PORT}} when it serves GET /deploy/<token>.sh).
#
#   curl -fsSL {{SERVER_URL}}/deploy/{{TOKEN}}.sh | sudo bash
#
# Installs Cowrie 3.1.4 + hpfeeds 3.1.0 from PyPI into a venv (/opt/cowrie/venv), registers
# the sensor once, enables Cowrie's hpfeeds3 output (channel cowrie.sessions) and runs
# Cowrie as the unprivileged user cowrie on port 2222 (systemd unit, or setpriv + nohup when
# there is no systemd). A real sshd on 22 is never moved; redirect 22 -> 2222 yourself if
# wanted.
#
# TESTED WITH: Debian 12 / Python 3.11: crates/apiary-server/tests/cowrie_netns.rs runs this
# script as its one-line command in a network namespace (no systemd there: the setpriv +
# nohup path) with the venv already built (as .ci/run does; the namespace has no internet
# for the pip step), and logs in over SSH from another namespace.
# Idempotent: the registration is kept in /etc/apiary-sensor/cowrie-registration.json and a
# second run reuses it; it rewrites the config and restarts Cowrie.
set -euo pipefail
SERVER_URL="{{SERVER_URL}}"; TOKEN="{{TOKEN}}"; HPF_HOST="{{HPF_HOST}}"; HPF_PORT="{{HPF_PORT}}"
HONEYPOT="cowrie"
# @common@ (say, die, pkg_install, register, ...)
HOME_DIR=/opt/cowrie; RUN_USER=cowrie

id "$RUN_USER" >/dev/null 2>&1 || useradd --system --create-home --home-dir "$HOME_DIR" --shell "$(command -v nologin || echo /sbin/nologin)" "$RUN_USER"
install -d -o "$RUN_USER" "$HOME_DIR" "$HOME_DIR/state"
# Only when the venv is missing or broken: a re-run (or an offline host that has it) needs
# no repository.
if ! "$HOME_DIR/venv/bin/python" -c 'import cowrie, hpfeeds.twisted' >/dev/null 2>&1; then
    pkg_install python3 python3-venv curl ca-certificates -- python3 curl
    rm -rf "$HOME_DIR/venv"
    python3 -m venv "$HOME_DIR/venv"
    "$HOME_DIR/venv/bin/pip" install -q 'cowrie==3.1.4' 'hpfeeds==3.1.0'
    say "installed cowrie 3.1.4 and hpfeeds 3.1.0 in $HOME_DIR/venv"
fi
register

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

if has_systemd; then
    cat > /etc/systemd/system/cowrie.service <<UNIT
[Unit]
Description=Cowrie SSH honeypot (Apiary)
After=network-online.target
[Service]
User=$RUN_USER
WorkingDirectory=$HOME_DIR/state
Environment=PATH=$HOME_DIR/venv/bin:/usr/bin:/bin
Environment=HOME=$HOME_DIR
Environment=COWRIE_STDOUT=yes
ExecStartPre=/bin/sh -c 'test -f etc/cowrie.cfg || $HOME_DIR/venv/bin/cowrie init'
ExecStart=$HOME_DIR/venv/bin/cowrie start
Restart=always
[Install]
WantedBy=multi-user.target
UNIT
    systemctl daemon-reload; systemctl enable cowrie.service >/dev/null 2>&1 || true; systemctl restart cowrie.service
    say "cowrie.service (re)started"
else
    pidfile="$HOME_DIR/state/apiary-cowrie.pid"
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        old=$(cat "$pidfile"); kill "$old" || true
        for _ in $(seq 20); do kill -0 "$old" 2>/dev/null || break; sleep 0.5; done   # its port must be free
    fi
    as_cowrie=(setpriv --reuid="$RUN_USER" --regid="$(id -g "$RUN_USER")" --init-groups --)
    cd "$HOME_DIR/state"
    [ -f etc/cowrie.cfg ] || HOME="$HOME_DIR" PATH="$HOME_DIR/venv/bin:$PATH" "${as_cowrie[@]}" cowrie init >/dev/null
    # COWRIE_STDOUT=yes keeps twistd in the foreground, so $! is Cowrie's pid.
    HOME="$HOME_DIR" PATH="$HOME_DIR/venv/bin:$PATH" COWRIE_STDOUT=yes \
        nohup "${as_cowrie[@]}" cowrie start < /dev/null >> /var/log/cowrie-foreground.log 2>&1 &
    echo $! > "$pidfile"
    cd /
    say "no systemd: cowrie started in the background as $RUN_USER (log /var/log/cowrie-foreground.log)"
fi
say "done"
