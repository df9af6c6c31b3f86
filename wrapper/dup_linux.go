package wrapper

import "golang.org/x/sys/unix"

// dupOnto makes newfd a copy of oldfd (dup2, which some Linux
// architectures only have as dup3).
func dupOnto(oldfd, newfd int) error { return unix.Dup3(oldfd, newfd, 0) }
