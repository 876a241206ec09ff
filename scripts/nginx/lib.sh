# Sourced by scripts/serve.sh and scripts/tracking_server.sh, which each put nginx (Debian's
# `nginx`, `libnginx-mod-http-lua`, `lua-cjson`) in front of an MLflow server; they define fail().

nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
nginx_scripts=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd) # nginx wants absolute paths

require_nginx() { # $1: the make target, for the message
    if [[ ! -x "$nginx_bin" || ! -e /usr/lib/nginx/modules/ngx_http_lua_module.so ]] ||
        ! compgen -G "/usr/lib/*/lua/5.1/cjson.so" >/dev/null; then
        fail "nginx with its Lua module is not installed; install it with 'sudo apt-get install" \
            "nginx libnginx-mod-http-lua lua-cjson' (Debian/Ubuntu), then run make $1 again"
    fi
}

free_port() { # a port of 127.0.0.1 that nothing listens on now: for the server nginx fronts
    python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# render_nginx_conf TEMPLATE STATE NAME=VALUE...: TEMPLATE with each @NAME@ replaced, and
# @STATE@, @SCRIPTS@ (this folder), into STATE/nginx.conf, checked by `nginx -t`. Values are
# numbers, names and paths made by the scripts, never user text with `#` in it.
render_nginx_conf() {
    local template=$1 state=$2 pair
    local -a edits=(-e "s#@STATE@#$state#g" -e "s#@SCRIPTS@#$nginx_scripts#g")
    shift 2
    for pair in "$@"; do
        edits+=(-e "s#@${pair%%=*}@#${pair#*=}#g")
    done
    sed "${edits[@]}" "$template" >"$state/nginx.conf"
    "$nginx_bin" -t -q -e stderr -p "$state" -c "$state/nginx.conf" ||
        fail "nginx refused its configuration (above)"
}

# start_nginx STATE PORT: nginx in the background (sets nginx_pid), until it listens on PORT.
start_nginx() {
    "$nginx_bin" -e stderr -p "$1" -c "$1/nginx.conf" &
    nginx_pid=$!
    until (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; do
        kill -0 "$nginx_pid" 2>/dev/null || fail "nginx did not start on 127.0.0.1:$2 (port in use?)"
        sleep 0.2
    done
}

stop_nginx() {
    if [[ -n "${nginx_pid:-}" ]]; then
        kill -QUIT "$nginx_pid" 2>/dev/null || true
        wait "$nginx_pid" 2>/dev/null || true
    fi
}
