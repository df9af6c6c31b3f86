# A job still run by an old Saltpeter wrapper (protocol 1, no
# authentication): the core accepts it only with legacy_wrappers = true.
job "old-report" {
  schedule = "@hourly"
  command  = "/usr/local/bin/report"
  target "local" {}
  wrapper {
    path     = "/usr/local/bin/sp_wrapper.py"
    protocol = 1
  }
}
