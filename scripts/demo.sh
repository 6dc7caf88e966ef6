#!/usr/bin/env bash
# make demo: the whole pipeline on this machine with real components.
#
#   build examples/site → deploy to a local versitygw (S3) → Varnish (xkey) as
#   the CDN in front of both the bucket (assets) and the origin (pages) →
#   assetctl serve on 4 PostgreSQL shards and Redis, seeded with the example
#   data set.
#
# It installs what is missing (as `make tools` does), prints the URLs and
# runs until Ctrl-C, which stops everything it started. DEMO_ONCE=1 checks
# every URL once and exits instead (what CI and scripts use).
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
export PATH="$($GO env GOPATH)/bin:$PATH"
BIN=bin/assetctl
DIR=${DEMO_DIR:-.demo}
S3_PORT=${DEMO_S3_PORT:-7070}
PAGES_PORT=${DEMO_PAGES_PORT:-6081}
CDN_PORT=${DEMO_CDN_PORT:-6082}
ORIGIN_PORT=${DEMO_ORIGIN_PORT:-8080}
BUCKET=assetctl-demo
CDN_URL="http://127.0.0.1:$CDN_PORT/$BUCKET/site/"
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo-secret AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true

pids=()
varnish_pid_file=""
cleanup() {
	trap - INT TERM EXIT
	echo
	echo "demo: stopping"
	if [ -n "$varnish_pid_file" ] && [ -s "$varnish_pid_file" ]; then
		vpid=$(cat "$varnish_pid_file")
		kill "$vpid" 2>/dev/null || true
		for _ in $(seq 1 100); do kill -0 "$vpid" 2>/dev/null || break; sleep 0.1; done
	fi
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		kill "${pids[i]}" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	[ -n "${VDIR:-}" ] && rm -rf "$VDIR"
	if [ -n "${PG_PRIVATE:-}" ]; then
		runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_PRIVATE/data" -m fast stop >/dev/null 2>&1 || true
	fi
	echo "demo: stopped everything it started (data stays in $DIR/; make demo-clean removes it)"
}
trap cleanup INT TERM EXIT

wait_port() { # host:port, what
	for _ in $(seq 1 150); do
		if (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null; then return 0; fi
		sleep 0.2
	done
	echo "demo: $2 did not start on $1; its log is in $DIR/" >&2
	exit 1
}
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# 1. Tools: what `make tools` installs, plus varnish-modules (xkey).
missing=""
command -v varnishd >/dev/null || [ -x /usr/sbin/varnishd ] || missing="$missing varnish"
ls /usr/lib/*/varnish/vmods/libvmod_xkey.so >/dev/null 2>&1 || missing="$missing varnish-modules"
command -v redis-server >/dev/null || missing="$missing redis-server"
command -v pg_ctlcluster >/dev/null || command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing="$missing postgresql"
if [ -n "$missing" ]; then
	echo "demo: installing:$missing"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
fi
command -v aws >/dev/null || { echo "demo: installing awscli (sets the bucket's public-read policy)"; python3 -m pip install -q awscli; }
command -v versitygw >/dev/null || { echo "demo: installing versitygw (about a minute the first time)"; $GO install github.com/versity/versitygw/cmd/versitygw@${VERSITYGW_VERSION:-v1.8.0}; }
for p in $S3_PORT $PAGES_PORT $CDN_PORT $ORIGIN_PORT; do
	port_free "$p" || { echo "demo: port $p is in use (an earlier demo?): stop it or set DEMO_*_PORT" >&2; exit 1; }
done
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

# 2. PostgreSQL and Redis: the machine's, else private ones under $DIR.
PG_HOSTPORT=127.0.0.1:5432
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null || ! psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; then
	PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
	PG_PRIVATE=$DIR/pg
	PG_HOSTPORT=127.0.0.1:5499
	echo "demo: no PostgreSQL with trust for user postgres on 127.0.0.1:5432: starting a private one on $PG_HOSTPORT"
	mkdir -p "$PG_PRIVATE" && chown postgres "$PG_PRIVATE"
	[ -d "$PG_PRIVATE/data" ] || runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_PRIVATE/data" -A trust -U postgres >/dev/null
	runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_PRIVATE/data" -l "$PG_PRIVATE/log" -w \
		-o "-p 5499 -k $PG_PRIVATE -c listen_addresses=127.0.0.1" start >/dev/null
fi
pg() { echo "postgres://postgres@$PG_HOSTPORT/$1?sslmode=disable"; }
export ASSETCTL_CATALOG=$(pg assetctl_site_catalog)
shard_flags=()
for i in 0 1 2 3; do shard_flags+=(--shard "s$i=$(pg assetctl_site_shard_$i)"); done

REDIS_ADDR=127.0.0.1:6379
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
	REDIS_ADDR=127.0.0.1:6399
	echo "demo: no Redis on 127.0.0.1:6379: starting a private one on $REDIS_ADDR"
	redis-server --port 6399 --bind 127.0.0.1 --save "" --appendonly no >"$DIR/redis.log" 2>&1 &
	pids+=($!)
	wait_port $REDIS_ADDR redis
fi

# 3. Build.
$GO build -o $BIN ./cmd/assetctl
./$BIN build examples/site -o dist --base-url "$CDN_URL"

# 4. A local S3 (versitygw), the bucket, anonymous read for the edge; deploy.
mkdir -p "$DIR/s3/$BUCKET" "$DIR/s3-meta"
ROOT_ACCESS_KEY=$AWS_ACCESS_KEY_ID ROOT_SECRET_KEY=$AWS_SECRET_ACCESS_KEY \
	versitygw --port 127.0.0.1:$S3_PORT posix "$DIR/s3" >"$DIR/versitygw.log" 2>&1 &
pids+=($!)
wait_port 127.0.0.1:$S3_PORT versitygw
if command -v aws >/dev/null; then
	aws --endpoint-url "http://127.0.0.1:$S3_PORT" s3api put-bucket-policy --bucket $BUCKET --policy \
		"{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"s3:GetObject\",\"Resource\":\"arn:aws:s3:::$BUCKET/*\"}]}"
else
	echo "demo: aws CLI missing (make tools-py): the bucket stays private and the edge cannot read it" >&2
fi

# 5. Varnish: one cache, two listeners. cdn= serves the bucket (with CORS, so
# SRI-checked module scripts and fonts load on the pages' origin); pages=
# serves the origin. xkey purges the pages a written document is on.
VDIR=$(mktemp -d /tmp/assetctl-demo-varnish.XXXXXX)
chmod 755 "$VDIR"
cat >"$VDIR/edge.vcl" <<VCL
vcl 4.1;
import xkey;
backend origin { .host = "127.0.0.1"; .port = "$ORIGIN_PORT"; }
backend s3 { .host = "127.0.0.1"; .port = "$S3_PORT"; }
acl purgers { "127.0.0.1"; }
sub vcl_recv {
  if (req.method == "PURGE") {
    if (client.ip !~ purgers) { return (synth(405, "Not allowed")); }
    if (req.http.xkey-purge) {
      set req.http.n-gone = xkey.purge(req.http.xkey-purge);
      return (synth(200, "Invalidated " + req.http.n-gone + " objects"));
    }
    return (purge);
  }
  if (local.socket == "cdn") {
    set req.backend_hint = s3;
    unset req.http.Cookie;
    unset req.http.Authorization;
  } else {
    set req.backend_hint = origin;
  }
}
sub vcl_hash {
  # Both listeners share one cache: keep their objects apart.
  hash_data(local.socket);
}
sub vcl_backend_response {
  if (!beresp.http.Cache-Control && !beresp.http.Expires) {
    set beresp.ttl = 0s;
    set beresp.uncacheable = true;
    return (deliver);
  }
}
sub vcl_deliver {
  if (local.socket == "cdn") {
    set resp.http.Access-Control-Allow-Origin = "*";
    set resp.http.Timing-Allow-Origin = "*";
  }
  if (obj.hits > 0) { set resp.http.X-Cache = "HIT"; } else { set resp.http.X-Cache = "MISS"; }
}
VCL
varnish_pid_file=$VDIR/varnish.pid
/usr/sbin/varnishd -a pages=127.0.0.1:$PAGES_PORT -a cdn=127.0.0.1:$CDN_PORT -f "$VDIR/edge.vcl" \
	-n "$VDIR/varnish" -s malloc,128m -P "$varnish_pid_file" -T none
wait_port 127.0.0.1:$CDN_PORT varnish

./$BIN deploy dist --bucket s3://$BUCKET/site --endpoint "http://127.0.0.1:$S3_PORT" \
	--purge "http://127.0.0.1:$CDN_PORT/$BUCKET/site"

# 6. The origin: 4 shards, Redis, the live manifest from the bucket, seeded.
./$BIN serve examples/site --seed "${shard_flags[@]}" --redis "$REDIS_ADDR" \
	--addr 127.0.0.1:$ORIGIN_PORT --cdn-url "$CDN_URL" \
	--manifest s3://$BUCKET/site --endpoint "http://127.0.0.1:$S3_PORT" \
	--purge "http://127.0.0.1:$PAGES_PORT/" >"$DIR/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 600); do
	grep -q "assetctl serve: http" "$DIR/serve.log" && break
	kill -0 "${pids[-1]}" 2>/dev/null || { cat "$DIR/serve.log" >&2; exit 1; }
	sleep 0.2
done
grep "assetctl serve:" "$DIR/serve.log" || true

cat <<EOF

assetctl demo is running (Ctrl-C stops it):
  pages through the edge   http://127.0.0.1:$PAGES_PORT/
  a product page           http://127.0.0.1:$PAGES_PORT/products/p00042
  a user profile           http://127.0.0.1:$PAGES_PORT/users/u00007
  the JSON API             http://127.0.0.1:$PAGES_PORT/api/products/p00042
  write (purges its page)  curl -X PATCH -H 'Authorization: Bearer demo-token-change-me' \\
                             -H 'Content-Type: application/merge-patch+json' \\
                             -d '{"price":"€1.00"}' http://127.0.0.1:$PAGES_PORT/api/products/p00042
  the static site (CDN)    http://127.0.0.1:$CDN_PORT/$BUCKET/site/index.html
  the origin itself        http://127.0.0.1:$ORIGIN_PORT/   (/readyz, /metrics)
  logs                     $DIR/serve.log, $DIR/versitygw.log
EOF

if [ -n "${DEMO_ONCE:-}" ]; then
	fail=0
	for u in "http://127.0.0.1:$PAGES_PORT/" "http://127.0.0.1:$PAGES_PORT/products/p00042" \
		"http://127.0.0.1:$PAGES_PORT/users/u00007" "http://127.0.0.1:$PAGES_PORT/api/products/p00042" \
		"http://127.0.0.1:$CDN_PORT/$BUCKET/site/index.html" "http://127.0.0.1:$ORIGIN_PORT/readyz"; do
		code=$(curl -s -o /dev/null -w '%{http_code}' "$u")
		echo "demo: $code $u"
		[ "$code" = 200 ] || fail=1
	done
	# A write purges the page's tag at the edge: the next view shows it.
	page=http://127.0.0.1:$PAGES_PORT/products/p00042
	curl -s -o /dev/null "$page"
	hit=$(curl -s -o /dev/null -D - "$page" | tr -d '\r' | sed -n 's/^X-Cache: //p')
	price="€$((RANDOM % 90 + 10)).99"
	curl -s -o /dev/null -X PATCH -H 'Authorization: Bearer demo-token-change-me' \
		-H 'Content-Type: application/merge-patch+json' -d "{\"price\":\"$price\"}" \
		"http://127.0.0.1:$PAGES_PORT/api/products/p00042"
	if [ "$hit" = HIT ] && curl -s "$page" | grep -q "$price"; then
		echo "demo: a cached page (X-Cache: $hit) shows the PATCHed price $price at once: its tag was purged"
	else
		echo "demo: the PATCHed price $price is not on the page through the edge (X-Cache was $hit)" >&2
		fail=1
	fi
	exit $fail
fi
wait "${pids[-1]}"
