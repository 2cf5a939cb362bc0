package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"go/scanner"
	"go/token"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// A program is one entry of the lines-of-code table: a name and the files
// or directories its source is read from.
type program struct {
	name  string
	paths []string
}

// parsePrograms reads "name=path[,path...]" or a bare path (named after its
// last element) per argument.
func parsePrograms(args []string) []program {
	var out []program
	for _, a := range args {
		name, paths, ok := strings.Cut(a, "=")
		if !ok {
			name, paths = filepath.Base(filepath.Clean(a)), a
		}
		out = append(out, program{name: name, paths: strings.Split(paths, ",")})
	}
	return out
}

// configExts are the files counted as configuration a program needs.
var configExts = []string{".yaml", ".yml", ".toml", ".json"}

// skippedDirs are never descended into.
var skippedDirs = []string{"testdata", "vendor", ".git"}

// countedFile is one file of a program and its counted lines.
type countedFile struct {
	path   string
	config bool
	lines  int
}

// programFiles lists the counted files under paths: Go sources except
// _test.go files, and configuration files (configExts). A path that names a
// file is counted whatever its name. go.mod and go.sum are never counted:
// they are written by the go command, not by the user.
func programFiles(paths []string) ([]countedFile, error) {
	var files []countedFile
	for _, root := range paths {
		info, err := os.Stat(root)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			files = append(files, countedFile{path: root, config: filepath.Ext(root) != ".go"})
			continue
		}
		err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if path != root && slices.Contains(skippedDirs, d.Name()) {
					return filepath.SkipDir
				}
				return nil
			}
			switch ext := filepath.Ext(path); {
			case ext == ".go" && !strings.HasSuffix(path, "_test.go"):
				files = append(files, countedFile{path: path})
			case slices.Contains(configExts, ext):
				files = append(files, countedFile{path: path, config: true})
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	for i := range files {
		src, err := os.ReadFile(files[i].path)
		if err != nil {
			return nil, err
		}
		if files[i].config {
			files[i].lines = configLines(src)
		} else if files[i].lines, err = goLines(src); err != nil {
			return nil, fmt.Errorf("%s: %w", files[i].path, err)
		}
	}
	return files, nil
}

// goLines counts the lines of Go source on which a token other than a
// comment starts or continues (a raw string spanning lines counts each of
// its lines). Blank lines and lines holding only comments are not counted.
func goLines(src []byte) (int, error) {
	fset := token.NewFileSet()
	file := fset.AddFile("", fset.Base(), len(src))
	var errs scanner.ErrorList
	var s scanner.Scanner
	s.Init(file, src, errs.Add, scanner.ScanComments)
	lines := make(map[int]bool)
	for {
		pos, tok, lit := s.Scan()
		if tok == token.EOF {
			break
		}
		// An automatic semicolon sits at the end of a line that already
		// counts, or on a comment's line.
		if tok == token.COMMENT || (tok == token.SEMICOLON && lit != ";") {
			continue
		}
		first := file.Line(pos)
		for l := first; l <= first+strings.Count(lit, "\n"); l++ {
			lines[l] = true
		}
	}
	if err := errs.Err(); err != nil {
		return 0, err
	}
	return len(lines), nil
}

// configLines counts the non-blank lines of a configuration file that are
// not comments (starting with '#', after leading space).
func configLines(src []byte) int {
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(src))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			n++
		}
	}
	return n
}

// writeLOC prints the lines-of-code table of progs, then the files each
// row counted. A program whose paths do not exist is reported as missing.
func writeLOC(w io.Writer, progs []program) error {
	fmt.Fprintf(w, "## Lines of code\n\nNon-blank, non-comment lines of each program's Go sources (no _test.go files)\nand of the configuration files it reads (%s); go.mod and go.sum are not counted.\n\n",
		strings.Join(configExts, " "))
	fmt.Fprintln(w, "| program | Go | config | total | files |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|")
	var detail strings.Builder
	for _, p := range progs {
		files, err := programFiles(p.paths)
		if errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(w, "| %s | - | - | - | missing: %s |\n", p.name, strings.Join(p.paths, ","))
			continue
		}
		if err != nil {
			return fmt.Errorf("kit: counting %s: %w", p.name, err)
		}
		var goN, cfgN int
		for _, f := range files {
			if f.config {
				cfgN += f.lines
			} else {
				goN += f.lines
			}
			fmt.Fprintf(&detail, "  %-8s %4d  %s\n", p.name, f.lines, f.path)
		}
		fmt.Fprintf(w, "| %s | %d | %d | %d | %d |\n", p.name, goN, cfgN, goN+cfgN, len(files))
	}
	fmt.Fprintf(w, "\nFiles counted:\n\n%s", detail.String())
	return nil
}
