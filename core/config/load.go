package config

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
)

var rootSchema = &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{
	{Type: "core"},
	{Type: "store", LabelNames: []string{"kind"}},
	{Type: "plugin", LabelNames: []string{"kind", "name"}},
	{Type: "notifier", LabelNames: []string{"name"}},
	{Type: "maintenance"},
	{Type: "job", LabelNames: []string{"name"}},
}}

// Load reads PATH, a file or a folder whose *.hcl files are read in name
// order and merged, applies defaults and validates everything. Every
// mistake is a diagnostic with its range, all of them at once.
//
// The returned Config is never nil and always carries Files, so that
// diagnostics can be printed with their source; when diags has errors the
// rest of it is partial and must not be used.
func Load(path string) (*Config, hcl.Diagnostics) {
	cfg := &Config{Files: map[string]*hcl.File{}, Core: defaultCore()}
	paths, base, diags := sources(path)
	if diags.HasErrors() {
		return cfg, diags
	}

	l := &loader{cfg: cfg, firstJob: map[string]hcl.Range{}}
	l.add(diags)
	parser := hclparse.NewParser()
	for _, p := range paths {
		file, diags := parse(parser, p)
		l.add(diags)
		if diags.HasErrors() || file == nil {
			// A body cut short by a syntax error would add misleading
			// errors (a job "without" the block that failed to parse).
			l.syntaxErrors = true
			continue
		}
		l.root(file.Body)
	}
	cfg.Files = parser.Files()
	l.finish(base)
	sort.Slice(cfg.Jobs, func(i, j int) bool { return cfg.Jobs[i].Name < cfg.Jobs[j].Name })
	return cfg, l.diags
}

// parse reads and parses one file into parser, as parser.ParseHCLFile
// does, but through parseFile.
func parse(parser *hclparse.Parser, path string) (*hcl.File, hcl.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		return parser.ParseHCLFile(path) // its diagnostic for a file it cannot read
	}
	file, diags := parseFile(src, path)
	parser.AddFile(path, file)
	return file, diags
}

// sources lists the files PATH stands for, and the folder that defaults
// such as data_dir are relative to.
func sources(path string) (paths []string, base string, diags hcl.Diagnostics) {
	fail := func(summary, detail string) ([]string, string, hcl.Diagnostics) {
		return nil, "", hcl.Diagnostics{{Severity: hcl.DiagError, Summary: summary, Detail: detail}}
	}
	st, err := os.Stat(path)
	if err != nil {
		return fail("Cannot read the configuration", err.Error())
	}
	if !st.IsDir() {
		return []string{path}, filepath.Dir(path), nil
	}
	entries, err := os.ReadDir(path) // sorted by name
	if err != nil {
		return fail("Cannot read the configuration folder", err.Error())
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".hcl") {
			continue
		}
		paths = append(paths, filepath.Join(path, e.Name()))
	}
	if len(paths) == 0 {
		return fail("No configuration files", fmt.Sprintf("The folder %s has no *.hcl files.", path))
	}
	return paths, path, nil
}

// loader merges the files into one Config; what must be unique is checked
// across all files, and what refers to other blocks (a job's target
// plugin, its notifiers) once every file is read.
type loader struct {
	decoder
	cfg          *Config
	syntaxErrors bool

	core, store, maintenance *hcl.Block
	coreAttrs                coreAttrs
	firstJob                 map[string]hcl.Range
	refs                     []jobRefs
	// notifierPlugins are the notifier blocks' plugin attributes, checked
	// once every plugin block is read (checkNotifierPlugins).
	notifierPlugins []*hcl.Attribute
}

func (l *loader) root(body hcl.Body) {
	c := l.content(body, rootSchema)
	for _, b := range c.Blocks {
		switch b.Type {
		case "core":
			if l.once(&l.core, b) {
				l.decodeCore(b)
			}
		case "store":
			if l.once(&l.store, b) {
				l.decodeStore(b)
			}
		case "maintenance":
			if l.once(&l.maintenance, b) {
				l.decodeMaintenance(b)
			}
		case "plugin":
			l.decodePlugin(b)
		case "notifier":
			l.decodeNotifier(b)
		case "job":
			l.decodeJob(b)
		}
	}
}

// once records the first block of a kind that may appear only once across
// all files, and reports any later one with where the first is.
func (l *loader) once(first **hcl.Block, b *hcl.Block) bool {
	if *first != nil {
		l.errorAt(b.DefRange, fmt.Sprintf("Duplicate %s block", b.Type),
			fmt.Sprintf("The configuration takes one %s block across all its files; the first is at %s.", b.Type, at((*first).DefRange)))
		return false
	}
	*first = b
	return true
}

func (l *loader) finish(base string) {
	l.finishCore(base)
	if s := l.cfg.Store; s != nil && s.Kind == StoreSQLite && s.Path == "" {
		s.Path = filepath.Join(l.cfg.Core.DataDir, "saltpeter.db")
	}
	l.checkRefs()
	l.checkNotifierPlugins()
}
