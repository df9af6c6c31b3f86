# A nightly job in the operator's own time zone, with a hard timeout and a
# gentler kill policy for a database dump.
job "backup-db" {
  group    = "databases"
  schedule = "0 30 2 * * *"
  timezone = "Europe/Bucharest"

  command = "/usr/local/bin/backup.sh --full"
  cwd     = "/var/backups"
  env     = { PGHOST = "db1" }

  target "local" {}

  timeout = "2h"
  overlap = "skip"

  kill {
    signal = "SIGINT"
    grace  = "30s"
  }
}
