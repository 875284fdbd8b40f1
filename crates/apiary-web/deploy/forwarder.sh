# --- shared by the forwarder scripts (crates/apiary-web/deploy/forwarder.sh) ---
install_sensor_forwarder() { # KIND PATH
    local kind="$1" path="$2" bin=/usr/local/bin/apiary-sensor tmp
    id apiary-sensor >/dev/null 2>&1 || useradd --system --home-dir "$STATE" --shell "$(command -v nologin || echo /sbin/nologin)" apiary-sensor
    install -d -m 0750 -o apiary-sensor "$STATE"
    tmp=$(mktemp)
    curl -fsS "$SERVER_URL/deploy/$TOKEN/apiary-sensor" -o "$tmp" || die "could not download apiary-sensor"
    install -m 0755 "$tmp" "$bin"; rm -f "$tmp"
    # The sensor reads the log as root-started process before dropping privileges only for
    # listening services; forwarders need read access to the log: add the user to adm.
    getent group adm >/dev/null && usermod -a -G adm apiary-sensor || true
    {
        printf '[broker]\nhost = "%s"\nport = %s\nident = "%s"\nsecret = "%s"\n\n' "$HPF_HOST" "$HPF_PORT" "$IDENT" "$SECRET"
        printf '[sensor]\nspool_dir = "%s"\nuser = "apiary-sensor"\n\n' "$STATE/$kind"
        printf '[[forwarder]]\nkind = "%s"\npath = "%s"\n' "$kind" "$path"
    } > "$ETC/$kind-forwarder.toml"
    chmod 0640 "$ETC/$kind-forwarder.toml"
    install -d -m 0750 "$STATE/$kind"
    "$bin" check-config --config "$ETC/$kind-forwarder.toml"
    local unit="apiary-forward-$kind"
    if has_systemd; then
        printf '[Unit]\nDescription=Apiary %s forwarder\nAfter=network-online.target\n[Service]\nExecStart=%s run --config %s\nRestart=always\nRestartSec=5\n[Install]\nWantedBy=multi-user.target\n' \
            "$kind" "$bin" "$ETC/$kind-forwarder.toml" > "/etc/systemd/system/$unit.service"
        systemctl daemon-reload; systemctl enable "$unit.service" >/dev/null 2>&1 || true
        systemctl restart "$unit.service"
        say "systemd unit $unit.service (re)started"
    else
        if [ -f "$STATE/$unit.pid" ] && kill -0 "$(cat "$STATE/$unit.pid")" 2>/dev/null; then kill "$(cat "$STATE/$unit.pid")" || true; sleep 1; fi
        nohup "$bin" run --config "$ETC/$kind-forwarder.toml" >> "/var/log/$unit.log" 2>&1 &
        echo $! > "$STATE/$unit.pid"
        say "no systemd: $unit started in the background (pid $(cat "$STATE/$unit.pid"), log /var/log/$unit.log)"
    fi
}
