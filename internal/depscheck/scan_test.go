package depscheck

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// launcher describes a function that executes (or looks up) the program named by
// one of its arguments: index is that argument; first means the program is the
// first element of that argument (a slice, or the variadic values from there on).
type launcher struct {
	index    int
	first    bool
	variadic bool // the parameter at index is variadic
}

// seeds are the standard library's ways to run a program. Everything else that
// runs one is found from these: a function passing a parameter on to a launcher
// as the program name is a launcher too.
var seeds = map[string]launcher{
	"os/exec.Command":        {index: 0},
	"os/exec.CommandContext": {index: 1},
	"os/exec.LookPath":       {index: 0},
}

// execution is one program name found executed in the sources.
type execution struct {
	Program string
	Pos     string // FILE:LINE, relative to the scanned root
}

// goFile is one parsed source file with what its calls resolve against.
type goFile struct {
	name    string
	ast     *ast.File
	key     string            // the package's key: import path, plus "_test" for external test packages
	imports map[string]string // local name -> import path
}

// scanner finds the programs a tree of Go sources executes.
type scanner struct {
	fset      *token.FileSet
	root      string
	files     []*goFile
	consts    map[string]string // pkg key + "." + name -> string value
	launchers map[string]launcher
}

// scanTree parses every .go file under root (module path module) and returns the
// programs executed, sorted by position.
func scanTree(root, module string) ([]execution, error) {
	s := &scanner{fset: token.NewFileSet(), root: root, consts: map[string]string{}, launchers: map[string]launcher{}}
	for k, v := range seeds {
		s.launchers[k] = v
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); p != root && (strings.HasPrefix(n, ".") || n == "bin" || n == "testdata" || n == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") {
			return nil
		}
		return s.add(p, module)
	})
	if err != nil {
		return nil, err
	}
	s.propagate()
	return s.executions(), nil
}

// add parses one file.
func (s *scanner) add(p, module string) error {
	f, err := parser.ParseFile(s.fset, p, nil, parser.SkipObjectResolution)
	if err != nil {
		return err
	}
	rel, _ := filepath.Rel(s.root, filepath.Dir(p))
	key := module
	if rel != "." {
		key = module + "/" + filepath.ToSlash(rel)
	}
	if strings.HasSuffix(f.Name.Name, "_test") {
		key += "_test"
	}
	g := &goFile{name: p, ast: f, key: key, imports: map[string]string{}}
	for _, im := range f.Imports {
		ip, _ := strconv.Unquote(im.Path.Value)
		name := path.Base(ip)
		if im.Name != nil {
			name = im.Name.Name
		}
		g.imports[name] = ip
	}
	ast.Inspect(f, func(n ast.Node) bool {
		if vs, ok := n.(*ast.ValueSpec); ok {
			for i, id := range vs.Names {
				if i < len(vs.Values) {
					if v, ok := stringLit(vs.Values[i]); ok {
						s.consts[key+"."+id.Name] = v
					}
				}
			}
		}
		return true
	})
	s.files = append(s.files, g)
	return nil
}

// function is a function declaration or a function literal bound to a name.
type function struct {
	key    string
	params *ast.FieldList
	body   *ast.BlockStmt
}

func (s *scanner) functions(g *goFile) []function {
	var fns []function
	ast.Inspect(g.ast, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.FuncDecl:
			if n.Body == nil {
				return true
			}
			k := g.key + "." + n.Name.Name
			if n.Recv != nil {
				k = g.key + ".*." + n.Name.Name
			}
			fns = append(fns, function{k, n.Type.Params, n.Body})
		case *ast.AssignStmt:
			for i, rhs := range n.Rhs {
				if fl, ok := rhs.(*ast.FuncLit); ok && i < len(n.Lhs) {
					if id, ok := n.Lhs[i].(*ast.Ident); ok {
						fns = append(fns, function{g.key + "." + id.Name, fl.Type.Params, fl.Body})
					}
				}
			}
		}
		return true
	})
	return fns
}

// callee names the function a call goes to, in the launchers' key space.
func (g *goFile) callee(c *ast.CallExpr) string {
	switch fn := c.Fun.(type) {
	case *ast.Ident:
		return g.key + "." + fn.Name
	case *ast.SelectorExpr:
		if x, ok := fn.X.(*ast.Ident); ok {
			if ip, ok := g.imports[x.Name]; ok {
				return ip + "." + fn.Sel.Name
			}
		}
		return g.key + ".*." + fn.Sel.Name
	}
	return ""
}

// programs returns the expressions naming the programs a launcher call runs:
// the launcher's argument, and the PROG of an `ip netns exec NS PROG` it makes.
func (s *scanner) programs(c *ast.CallExpr, l launcher) []ast.Expr {
	if l.index >= len(c.Args) {
		return nil
	}
	var prog ast.Expr
	switch {
	case !l.first:
		prog = c.Args[l.index]
	case c.Ellipsis.IsValid() && l.index == len(c.Args)-1 || !l.variadic:
		if el := elements(c.Args[l.index]); len(el) > 0 {
			prog = el[0]
		}
	default:
		prog = c.Args[l.index]
	}
	if prog == nil {
		return nil
	}
	out := []ast.Expr{prog}
	if v, ok := stringLit(prog); ok && v == "ip" {
		var rest []ast.Expr
		for i, a := range c.Args {
			if i <= l.index && !l.first {
				continue
			}
			if i == len(c.Args)-1 && c.Ellipsis.IsValid() {
				rest = append(rest, elements(a)...)
			} else {
				rest = append(rest, a)
			}
		}
		for i := 0; i+3 < len(rest); i++ {
			a, _ := stringLit(rest[i])
			b, _ := stringLit(rest[i+1])
			if a == "netns" && b == "exec" {
				out = append(out, rest[i+3])
			}
		}
	}
	return out
}

// elements returns the literal elements of []string{...} or append([]string{...}, ...).
func elements(e ast.Expr) []ast.Expr {
	switch e := e.(type) {
	case *ast.CompositeLit:
		return e.Elts
	case *ast.CallExpr:
		if id, ok := e.Fun.(*ast.Ident); ok && id.Name == "append" && len(e.Args) > 0 {
			return elements(e.Args[0])
		}
	}
	return nil
}

// launcherCalls calls fn with the program expressions of every launcher call
// under root; fn returns false to stop looking inside that call.
func (s *scanner) launcherCalls(g *goFile, root ast.Node, fn func(progs []ast.Expr) bool) {
	ast.Inspect(root, func(n ast.Node) bool {
		c, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		l, ok := s.launchers[g.callee(c)]
		if !ok {
			return true
		}
		return fn(s.programs(c, l))
	})
}

// propagate marks every function that passes a parameter on as a program name
// as a launcher, until nothing changes.
func (s *scanner) propagate() {
	for changed := true; changed; {
		changed = false
		for _, g := range s.files {
			for _, fn := range s.functions(g) {
				if _, known := s.launchers[fn.key]; known {
					continue
				}
				params := paramIndex(fn.params)
				s.launcherCalls(g, fn.body, func(progs []ast.Expr) bool {
					for _, e := range progs {
						if nl, ok := asParam(e, params); ok {
							s.launchers[fn.key] = nl
							changed = true
							return false
						}
					}
					return true
				})
			}
		}
	}
}

type param struct {
	index    int
	variadic bool
}

func paramIndex(fl *ast.FieldList) map[string]param {
	m := map[string]param{}
	i := 0
	for _, f := range fl.List {
		_, variadic := f.Type.(*ast.Ellipsis)
		for _, n := range f.Names {
			m[n.Name] = param{i, variadic}
			i++
		}
		if len(f.Names) == 0 {
			i++
		}
	}
	return m
}

// asParam reports whether e is a parameter (p) or its first element (p[0]).
func asParam(e ast.Expr, params map[string]param) (launcher, bool) {
	switch e := e.(type) {
	case *ast.Ident:
		if p, ok := params[e.Name]; ok {
			return launcher{index: p.index, variadic: p.variadic}, true
		}
	case *ast.IndexExpr:
		id, ok := e.X.(*ast.Ident)
		lit, isLit := e.Index.(*ast.BasicLit)
		if ok && isLit && lit.Value == "0" {
			if p, ok := params[id.Name]; ok {
				return launcher{index: p.index, first: true, variadic: p.variadic}, true
			}
		}
	}
	return launcher{}, false
}

// executions resolves the program names of every launcher call: string
// literals, string constants, and range variables over a literal list.
func (s *scanner) executions() []execution {
	var out []execution
	for _, g := range s.files {
		ranged := map[string][]string{}
		ast.Inspect(g.ast, func(n ast.Node) bool {
			if r, ok := n.(*ast.RangeStmt); ok {
				if id, ok := r.Value.(*ast.Ident); ok {
					for _, el := range elements(r.X) {
						if v, ok := stringLit(el); ok {
							ranged[id.Name] = append(ranged[id.Name], v)
						}
					}
				}
			}
			return true
		})
		s.launcherCalls(g, g.ast, func(progs []ast.Expr) bool {
			for _, e := range progs {
				var names []string
				if v, ok := stringLit(e); ok {
					names = []string{v}
				} else if id, ok := e.(*ast.Ident); ok {
					if v, ok := s.consts[g.key+"."+id.Name]; ok {
						names = []string{v}
					} else {
						names = ranged[id.Name]
					}
				}
				pos := s.fset.Position(e.Pos())
				rel, _ := filepath.Rel(s.root, pos.Filename)
				for _, name := range names {
					if prog := programName(name); prog != "" {
						out = append(out, execution{prog, rel + ":" + strconv.Itoa(pos.Line)})
					}
				}
			}
			return true
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pos < out[j].Pos })
	return out
}

// programName is the name a program is installed under: the base of an absolute
// path; "" for a relative path (one of our own binaries) or an empty string.
func programName(v string) string {
	switch {
	case v == "":
		return ""
	case strings.HasPrefix(v, "/"):
		return path.Base(v)
	case strings.Contains(v, "/"):
		return ""
	}
	return v
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	v, err := strconv.Unquote(lit.Value)
	return v, err == nil
}

// readList reads scripts/packages.list: program -> package ("-" for none).
func readList(file string) (map[string]string, []string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, err
	}
	progs := map[string]string{}
	var problems []string
	for i, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		where := file + ":" + strconv.Itoa(i+1)
		if len(f) < 3 {
			problems = append(problems, where+": want PROGRAM PACKAGE TARGETS [NOTE]")
			continue
		}
		if f[1] == "-" && len(f) < 4 {
			problems = append(problems, where+": a program without a package needs a note saying why")
		}
		for _, t := range strings.Split(f[2], ",") {
			switch t {
			case "demo", "test", "bench", "gen", "vm", "vagrant", "-":
			default:
				problems = append(problems, where+": unknown target "+strconv.Quote(t)+" (demo, test, bench, gen, vm, vagrant)")
			}
		}
		if f[0] != "-" {
			progs[f[0]] = f[1]
		}
	}
	return progs, problems, nil
}
