// Package config owns the HCL configuration: decoding files or a folder of
// files into Config, applying defaults, and validating everything an
// operator can get wrong, each mistake an hcl.Diagnostic with its range.
package config
