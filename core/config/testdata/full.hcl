core {
  listen            = "127.0.0.1:8080"
  advertise         = ["ws://10.0.0.5:8080"]
  tls_cert          = ""
  tls_key           = ""
  data_dir          = "/var/lib/saltpeter"
  secret_file       = "/etc/saltpeter/secret"
  legacy_wrappers   = false
  heartbeat_timeout = "30s"
  connect_deadline  = "2m"
  api_tokens = [
    { name = "ops",  role = "operate", sha256 = "2C26B46B68FFC68FF99B453C1D30413413422D706483BFA0F98A5E886266E7AE" },
    { name = "dash", role = "read",    sha256 = "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9" },
  ]
}

store "sqlite" {
  path      = "/var/lib/saltpeter/saltpeter.db"
  synchronous = "full"
  retention = "30d"
  max_output_per_machine = "64MiB"
}

plugin "target" "ssh" {
  path = ""
  config {
    user           = "cron"
    key_file       = "/etc/saltpeter/id_ed25519"
    known_hosts    = "/etc/saltpeter/known_hosts"
    deploy_wrapper = false
  }
}

plugin "target" "salt" {
  config {
    url      = "https://salt-master:8000"
    username = "saltpeter"
    password_file = "/etc/saltpeter/salt-password"
    eauth    = "pam"
    ca_file  = ""
  }
}

notifier "ops-webhook" {
  plugin = "webhook"
  config { url = "https://hooks.example.com/cron" }
}

maintenance {
  global   = false
  machines = ["db3"]
}

job "backup-db" {
  group    = "databases"
  schedule = "0 30 2 * * *"
  timezone = "Europe/Bucharest"
  enabled  = true

  command = "/usr/local/bin/backup.sh --full"
  cwd     = "/var/backups"
  user    = "backup"
  env     = { PGHOST = "db1" }

  target "salt" {
    tgt      = "db*"
    tgt_type = "glob"
  }
  number_of_targets    = 0
  batch_size           = 0
  success              = "all"
  abort_after_failures = 0

  timeout           = "2h"
  soft_timeout      = "1h"
  no_output_timeout = ""
  overlap           = "skip"
  jitter            = "0s"
  catch_up          = "latest"
  dst_gap           = "shift"
  dst_repeat        = "once"
  keep_children     = false

  kill {
    signal = "SIGTERM"
    grace  = "5s"
  }

  retry {
    attempts = 2
    backoff  = "1m"
  }

  expect {
    max_gap = "26h"
  }

  notify "ops-webhook" {
    on = ["failure", "timeout", "killed", "lost", "soft_timeout", "missed", "recovered"]
  }

  wrapper {
    path     = "/usr/local/bin/saltpeter-wrapper"
    protocol = 2
  }
}
