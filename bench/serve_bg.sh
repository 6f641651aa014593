# Sourced by the bench scripts that need a running server: builds ferrite, starts
# `ferrite serve` on a free loopback port in the background and sets $tmp (a scratch folder,
# removed on exit), $pid (the server) and $url (http://127.0.0.1:PORT/). Needs $root.
cargo build --release --quiet
tmp="$(mktemp -d)"
"$root/target/release/ferrite" serve --addr 127.0.0.1:0 > "$tmp/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do grep -q "serving on" "$tmp/serve.log" && break; sleep 0.1; done
url="$(grep -o 'http://[^ ]*' "$tmp/serve.log" | head -1)"
