#!/usr/bin/env bash
# Apiary sensor deploy script (template). The server fills in {{SERVER_URL}}, {{TOKEN}},
# {{HPF_HOST}} and {{HPF_PORT}} when it serves GET /deploy/<token>.sh.
#
#   curl -fsSL {{SERVER_URL}}/deploy/{{TOKEN}}.sh | sudo bash
#
# Idempotent: the sensor's registration (uuid/secret) is kept in /etc/apiary-sensor/;
# a second run reuses it instead of registering a new sensor.
#
# Options (environment, e.g. `curl ... | sudo CATCH_ALL=1 bash`):
#   CATCH_ALL=1          also record connections to every other TCP port: an nftables rule
#                        redirects them to one catch-all listener, which records the port
#                        the attacker chose. Ports something listens on when the script
#                        runs (your real sshd, say) and CATCH_ALL_EXCLUDE are left alone.
#   CATCH_ALL_PORT=N     the catch-all listener's port (default 65000).
#   CATCH_ALL_EXCLUDE="2222 8443"   more ports never to redirect.
set -euo pipefail

SERVER_URL="{{SERVER_URL}}"
TOKEN="{{TOKEN}}"
HPF_HOST="{{HPF_HOST}}"
HPF_PORT="{{HPF_PORT}}"
HONEYPOT="apiary"
ETC=/etc/apiary-sensor
STATE=/var/lib/apiary-sensor
BIN=/usr/local/bin/apiary-sensor
RUN_USER=apiary-sensor

say() { printf '[apiary-deploy] %s\n' "$*"; }
die() { printf '[apiary-deploy] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (curl ... | sudo bash)"

# --- packages (curl is needed; everything else is the static-ish sensor binary) ---
if ! command -v curl >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        say "installing curl with apt-get"
        DEBIAN_FRONTEND=noninteractive apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends curl ca-certificates
    elif command -v dnf >/dev/null 2>&1; then
        say "installing curl with dnf"; dnf install -y -q curl ca-certificates
    elif command -v yum >/dev/null 2>&1; then
        say "installing curl with yum"; yum install -y -q curl ca-certificates
    else
        die "no apt-get, dnf or yum: install curl yourself"
    fi
fi

# --- user ---
if ! id "$RUN_USER" >/dev/null 2>&1; then
    NOLOGIN=$(command -v nologin || echo /sbin/nologin)
    useradd --system --home-dir "$STATE" --shell "$NOLOGIN" "$RUN_USER"
    say "created system user $RUN_USER"
fi
install -d -m 0750 "$ETC"
install -d -m 0750 -o "$RUN_USER" "$STATE"

# --- binary ---
tmp=$(mktemp)
curl -fsS "$SERVER_URL/deploy/$TOKEN/apiary-sensor" -o "$tmp" || die "could not download the sensor binary"
install -m 0755 "$tmp" "$BIN"
rm -f "$tmp"
say "installed $BIN ($("$BIN" --version 2>/dev/null || echo unknown version))"

# --- registration (once) ---
json_field() { # json_field FILE KEY -> string value (flat JSON, no nested quotes in values we need)
    sed -n "s/.*\"$2\"[[:space:]]*:[[:space:]]*\"\([^\"]*\)\".*/\1/p" "$1" | head -n1
}
if [ -s "$ETC/registration.json" ] && [ -n "$(json_field "$ETC/registration.json" uuid)" ]; then
    say "already registered as $(json_field "$ETC/registration.json" uuid); not registering again"
else
    HOST=$(hostname)
    body=$(printf '{"name": "%s-%s", "hostname": "%s", "deploy_key": "%s", "honeypot": "%s"}' \
        "$HOST" "$HONEYPOT" "$HOST" "$TOKEN" "$HONEYPOT")
    reg=$(mktemp)
    code=$(curl -sS -o "$reg" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        -H "Authorization: Enrollment $TOKEN" -d "$body" "$SERVER_URL/api/sensor/") || code=000
    if [ "$code" != "200" ] && [ "$code" != "201" ]; then
        cat "$reg" >&2 || true; rm -f "$reg"
        die "registration failed (HTTP $code)"
    fi
    [ -n "$(json_field "$reg" uuid)" ] || { rm -f "$reg"; die "registration answer has no uuid"; }
    install -m 0600 "$reg" "$ETC/registration.json"; rm -f "$reg"
    say "created sensor: $(json_field "$ETC/registration.json" uuid)"
fi
IDENT=$(json_field "$ETC/registration.json" identifier)
[ -n "$IDENT" ] || IDENT=$(json_field "$ETC/registration.json" uuid)
SECRET=$(json_field "$ETC/registration.json" secret)
[ -n "$SECRET" ] || die "registration has no secret"

CATCH_ALL=${CATCH_ALL:-0}; CATCH_ALL_PORT=${CATCH_ALL_PORT:-65000}
case "$CATCH_ALL_PORT" in ''|*[!0-9]*) die "CATCH_ALL_PORT must be a port number" ;; esac

# --- config (rewritten each run; services kept if the admin edited them) ---
if [ ! -f "$ETC/services.toml" ]; then
    cat > "$ETC/services.toml" <<'SVC'
[[service]]
kind = "ssh"
port = 22

[[service]]
kind = "telnet"
port = 23

[[service]]
kind = "http"
port = 80

[[service]]
kind = "ftp"
port = 21

[[service]]
kind = "redis"
port = 6379

[[service]]
kind = "mysql"
port = 3306

# More services, off until uncommented (each port must be free on this host):
# [[service]]
# kind = "https"          # self-signed certificate for tls_cn, or tls_cert/tls_key files
# port = 443
# [[service]]
# kind = "smb"            # NTLM user, domain, workstation and NetNTLM hash
# port = 445
# [[service]]
# kind = "mssql"          # LOGIN7 user and password
# port = 1433
# [[service]]
# kind = "rdp"
# port = 3389
# [[service]]
# kind = "vnc"
# port = 5900
# [[service]]
# kind = "udp"            # records datagrams, never answers
# ports = [53, 123, 161, 1900, 5060]
# Fake shell: add `fake_shell = true` (and `accept = ["root:*"]`) to the ssh or telnet block.
SVC
fi
{
    printf '[broker]\nhost = "%s"\nport = %s\nident = "%s"\nsecret = "%s"\n\n' "$HPF_HOST" "$HPF_PORT" "$IDENT" "$SECRET"
    printf '[sensor]\nspool_dir = "%s"\nuser = "%s"\n\n' "$STATE" "$RUN_USER"
    cat "$ETC/services.toml"
    if [ "$CATCH_ALL" = 1 ]; then printf '\n[[service]]\nkind = "tcp"\nport = %s\n' "$CATCH_ALL_PORT"; fi
} > "$ETC/sensor.toml.new"
chmod 0640 "$ETC/sensor.toml.new"
mv "$ETC/sensor.toml.new" "$ETC/sensor.toml"
"$BIN" check-config --config "$ETC/sensor.toml"
say "wrote $ETC/sensor.toml (broker $HPF_HOST:$HPF_PORT, ident $IDENT)"

# A real sshd on port 22 would collide with the honeypot: warn, do not move it silently.
# On a second run the listener is this sensor itself: not a collision.
if ss -ltnpH 'sport = :22' 2>/dev/null | grep -v '"apiary-sensor"' | grep -q .; then
    say "WARNING: something already listens on port 22 (sshd?). Move it or edit $ETC/services.toml"
fi

# --- catch-all redirect (CATCH_ALL=1) ---
NFT_FILE="$ETC/catch-all.nft"
if [ "$CATCH_ALL" = 1 ]; then
    if ! command -v nft >/dev/null 2>&1; then
        if command -v apt-get >/dev/null 2>&1; then
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nftables
        elif command -v dnf >/dev/null 2>&1; then dnf install -y -q nftables
        elif command -v yum >/dev/null 2>&1; then yum install -y -q nftables
        fi
    fi
    command -v nft >/dev/null 2>&1 || die "CATCH_ALL=1 needs nft (nftables)"
    # Never redirect a port something already listens on (sshd, the sensor's own services
    # on a re-run), the configured services' ports, or the admin's exclusions.
    keep=$( { ss -ltnH 2>/dev/null | awk '{print $4}' | sed -E 's/.*[:.]([0-9]+)$/\1/'
              grep -Eo '^[[:space:]]*ports?[[:space:]]*=[^#]*' "$ETC/services.toml" | grep -Eo '[0-9]+'
              for p in ${CATCH_ALL_EXCLUDE:-}; do echo "$p"; done
              echo "$CATCH_ALL_PORT"; } | grep -E '^[0-9]+$' | sort -un | paste -sd, -)
    cat > "$NFT_FILE" <<NFT
# Written by the Apiary deploy script (CATCH_ALL=1): new TCP connections to any port not
# listed below go to apiary-sensor's catch-all on $CATCH_ALL_PORT.
table inet apiary_catch_all
delete table inet apiary_catch_all
table inet apiary_catch_all {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        iifname "lo" return
        tcp dport { $keep } return
        meta l4proto tcp redirect to :$CATCH_ALL_PORT
    }
}
NFT
    nft -f "$NFT_FILE"
    say "catch-all: other TCP ports redirected to $CATCH_ALL_PORT; left alone: $keep ($NFT_FILE)"
elif [ -f "$NFT_FILE" ]; then
    nft delete table inet apiary_catch_all 2>/dev/null || true
    rm -f "$NFT_FILE"
    say "catch-all redirect removed (CATCH_ALL is not 1)"
fi

# --- service ---
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    cat > /etc/systemd/system/apiary-sensor.service <<UNIT
[Unit]
Description=Apiary honeypot sensor
After=network-online.target
Wants=network-online.target

[Service]
$( [ "$CATCH_ALL" = 1 ] && echo "ExecStartPre=-$(command -v nft) -f $NFT_FILE" )
ExecStart=$BIN run --config $ETC/sensor.toml
Restart=always
RestartSec=5
NoNewPrivileges=yes

[Install]
WantedBy=multi-user.target
UNIT
    systemctl daemon-reload
    systemctl enable apiary-sensor.service >/dev/null 2>&1 || true
    systemctl restart apiary-sensor.service
    say "systemd unit apiary-sensor.service enabled and (re)started"
else
    # Foreground fallback: no systemd. Replace a previous instance started by this script.
    if [ -f "$STATE/apiary-sensor.pid" ] && kill -0 "$(cat "$STATE/apiary-sensor.pid")" 2>/dev/null; then
        kill "$(cat "$STATE/apiary-sensor.pid")" || true
        sleep 1
    fi
    nohup "$BIN" run --config "$ETC/sensor.toml" >> /var/log/apiary-sensor.log 2>&1 &
    echo $! > "$STATE/apiary-sensor.pid"
    say "no systemd: started in the background (pid $(cat "$STATE/apiary-sensor.pid"), log /var/log/apiary-sensor.log)"
fi
say "done"
