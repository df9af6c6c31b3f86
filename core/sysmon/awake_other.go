//go:build !linux

package sysmon

// Awake does nothing but where the program can re-execute itself in
// place through /proc (Linux).
func Awake() error {
	restore()
	return nil
}
