// Package api serves medialb's REST API, its System Overview WebUI and its
// Prometheus metrics on one HTTPS listener (api.listen).
//
// Every request needs HTTP basic auth against the bcrypt hashes of api.users; there
// is no default password, and [New] refuses to build a server without users. Failed
// logins are rate-limited per source address (five, then one per second; 429
// meanwhile) and logged once per burst. Unsafe cross-origin browser requests are
// refused (http.CrossOriginProtection), so that a page elsewhere cannot use a
// browser's cached login to drain or halt servers.
//
// Without api.tls_cert, a self-signed ECDSA P-256 certificate for the listen
// address, the host name and localhost is generated and kept in node.state_dir
// (CertFile, KeyFile), so it stays the same across restarts.
//
// Endpoints:
//
//	GET  /api/v1/overview                                          the System Overview as JSON
//	POST /api/v1/services/{service}/real-servers/{server}/drain    no new clients
//	POST /api/v1/services/{service}/real-servers/{server}/halt     out of service at once
//	POST /api/v1/services/{service}/real-servers/{server}/online   back in service (if healthy)
//	POST /api/v1/reload                                            re-read the configuration file
//	GET  /api/v1/config/services                                   the virtual services, as staged (configedit.go)
//	POST /api/v1/config/services                                   stage one more (JSON, the YAML's keys)
//	PUT|DELETE /api/v1/config/services/{name}                      stage a change or removal
//	POST /api/v1/config/services/{name}/real-servers               stage one more real server
//	PUT|DELETE /api/v1/config/services/{name}/real-servers/{server}
//	DELETE /api/v1/config/staged                                   discard the staged changes
//	POST /api/v1/config/apply                                      write the file (FILE.N backup) and reload
//	GET  /api/v1/config/file                                       the file, the text in force, their diff
//	POST /api/v1/maintenance/restart-l7                            reopen the layer-7 listeners
//	POST /api/v1/maintenance/restart-keepalived                    restart the HA pair's keepalived
//	GET  /api/v1/backup, POST /api/v1/restore                      Backup & Restore (backup.go)
//	GET  /api/v1/logs                                              the logger's last lines (logs.go)
//	GET  /api/v1/reports                                           sampled graphs' data (reports.go)
//	GET  /metrics                                                  Prometheus text format
//	GET  /                                                         the WebUI (embedded files under /ui/)
//
// Errors are JSON, {"error": "..."}: 401 without valid credentials (with a Basic
// challenge, realm "medialb"), 404 for unknown names and pages, 405 for a wrong
// method, 400 with {"errors": [{"path", "line", "message"}]} for an invalid
// configuration change (nothing staged), 422 for an invalid configuration on reload (with "problems", one
// "FILE:LINE: message" each).
//
// The server reads the node through a [Source], which the daemon implements.
package api
