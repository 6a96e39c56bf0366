wrk.method="POST"
wrk.headers["Content-Type"]="application/json"
wrk.body=io.open("/tmp/shot/rec.json"):read("*a")
