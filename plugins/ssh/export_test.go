package sshtarget

// SetWrapperDir makes deploy_wrapper take its wrappers from dir instead of
// beside the test binary.
func SetWrapperDir(t *Target, dir string) { t.wrapperDir = dir }
