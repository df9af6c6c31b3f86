# The configuration `make run` starts. It runs everything on this machine
# with the `local` target, keeps its data in ./data, and has no API tokens,
# so it serves on loopback only.

core {
  listen            = "127.0.0.1:8080"
  heartbeat_timeout = "30s"
  connect_deadline  = "1m"
}

# Says hello every five seconds (six fields: seconds first).
job "hello" {
  schedule = "*/5 * * * * *"
  command  = "echo \"hello from $(hostname) at $(date -u +%H:%M:%S)\"; echo 'a note on stderr' >&2"
  target "local" {}
  timeout  = "30s"
}

# A long job to watch and kill: `curl -X POST localhost:8080/api/v1/jobs/long-job/kill`.
# It starts a child in its own session and one in the background, the kind
# of tree other tools leave behind; the kill policy reaches all of it.
job "long-job" {
  schedule = "@manually"
  command  = <<-SH
    setsid sh -c 'while :; do sleep 1; done' &
    (while :; do sleep 1; done) &
    i=0
    while :; do i=$((i+1)); echo "working, step $i"; sleep 1; done
  SH
  target "local" {}
  kill {
    signal = "SIGTERM"
    grace  = "3s"
  }
}

# Fails on purpose: exit codes are kept.
job "fails" {
  schedule = "@every 1m"
  command  = "echo 'about to fail'; exit 7"
  target "local" {}
}
