# Sourced by bench/run.sh and bench/w2.sh: the local webhook receiver,
# nginx answering 204 at once (Debian's package; CI installs it for the
# gateway test). It shares the cores with the server, so it must cost
# little: Python's http.server took ~120 us of CPU per delivery there.

# The nginx binary, or nothing.
find_nginx() {
  command -v nginx || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; } || true
}

# start_nginx_receiver NGINX DIR PORT LOG: starts nginx from a config under
# DIR, on 127.0.0.1:PORT, logging to LOG; sets RECEIVER_PID. Bounded in
# time, so that it ends even when the script stops early.
start_nginx_receiver() {
  local nginx="$1" dir="$2" port="$3" log="$4"
  mkdir -p "$dir"
  cat >"$dir/nginx.conf" <<NGX
$( [ "$(id -u)" = 0 ] && echo 'user root root;' )
daemon off;
master_process off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$port;
        location / { return 204; }
    }
}
NGX
  timeout 1800 "$nginx" -p "$dir" -e "$log" -c "$dir/nginx.conf" >>"$log" 2>&1 &
  RECEIVER_PID=$!
}
