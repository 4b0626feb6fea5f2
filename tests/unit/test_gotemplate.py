"""sangja.cli.gotemplate against Go's text/template itself: the docker CLI on this machine
renders `--format` templates over `docker context inspect default` without a daemon, so
every template below that needs no more data than `.Name` ("default") is rendered by both
and must print the same. The rest (maps, missing keys, methods) checks Go's documented
behaviour for map-shaped data, which is what sangja's documents are."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from sangja.cli.gotemplate import TemplateError, go_sprintf, render

DOCKER = shutil.which("docker")

# Templates over {"Name": "default"} that Go must render exactly as we do.
SAME_AS_GO = [
    "{{.Name}}", "plain text", "{{/* a comment */}}x", "a {{- .Name -}} b", "a{{- /* c */ -}} b",
    "{{1.5e6}} {{1000000.0}} {{123456.0}} {{1e21}} {{0.0001}} {{0.00001}} {{3}} {{-2.5}}",
    "{{1e20}} {{12345678.0}} {{0.5}} {{100}} {{0x1F}} {{1_000}} {{'a'}} {{true}} {{false}}",
    '{{printf "%5.2f|%q|%x|%v|%d" 3.14159 "a\\"b" 255 1.5e6 7}}',
    '{{printf "%v %s %d %5d|%-5d|%05d %x %X %o %b %c %q %U" 1 "s" 42 42 42 42 255 255 8 5 '
    '65 65 65}}',
    '{{printf "%t %v %.3s %10.2f %-8s| %+d %e %g %G %%" true false "abcdef" 3.14159 "ab" 5 '
    '1234.5678 1234.5678 0.000012}}',
    '{{printf "%d %s" 1}} {{printf "%d" 1 2}} {{printf "%d" "x"}}',
    '{{printf "%g|%v|%G|%e|%.2g|%8.3f|%-8.3f|%+.1e" 1234567.0 1234567.0 1e21 5.0 1234.5 '
    '3.14159 3.14159 12345.678}}',
    '{{printf "%5t|%x|%X|%#x|%08.3f|% d" true -255 "Hi" 255 -3.14159 5}}',
    '{{printf "%q %v %s" 10 (split "" ",") (split "a" ",")}} {{printf "%6.2v|%.3v" 3.14159 '
    '"abcdef"}}',
    '{{printf "%v %v" (split "a,b" ",") true}} {{printf "%q" (split "a,b" ",")}} '
    '{{printf "%x" "hi"}}',
    '{{len .Name}} {{upper .Name}} {{lower "ABC"}} {{pad .Name 2 3}}|{{truncate .Name 3}}|'
    '{{truncate .Name 30}}',
    '{{join (split "a,b,c" ",") "-"}} {{title "hello world-foo 9lives"}} {{split "a,b" ","}}',
    '{{json (split "a,b" ",")}} {{json .Name}} {{json 1.5}} {{json "<&>"}}',
    '{{print 1 2 "a" "b" 3}} {{println 1 "x"}}|{{print}}|{{print "x" 1 true}}',
    "{{eq 1 2 1}} {{eq .Name \"default\"}} {{ne 1 2}} {{lt 1 2}} {{le 2 2}} {{gt 1 2}} "
    "{{ge 2 1}} {{lt \"a\" \"b\"}}",
    '{{and 1 0 2}} {{and 1 2}} {{or 0 "" "x"}} {{or 0 ""}} {{not 0}} {{not "x"}}',
    '{{0 | and 1}} {{1 | and 0}} {{1 | and 2 3}} {{"" | or 0}} {{0 | or "x"}} {{1 | or 2}} '
    '{{.Name | and 1}} {{and 1 0 | or 5}}',  # the piped value is the last argument
    '{{range $i, $e := split "a,b,c" ","}}{{$i}}={{$e}};{{end}}',
    '{{range split "a,b,c" ","}}[{{.}}]{{else}}none{{end}} {{range split "" "x"}}<{{.}}>{{end}}',
    '{{range $e := split "a,b,c,d" ","}}{{if eq $e "b"}}{{continue}}{{end}}'
    '{{if eq $e "d"}}{{break}}{{end}}{{$e}}{{end}}',
    '{{with $x := "hi"}}{{$x}}{{end}} {{with ""}}yes{{else}}no{{end}} {{with .Name}}{{.}}{{end}}',
    '{{if eq .Name "default"}}yes{{else}}no{{end}} {{if 0}}a{{else if 1}}b{{else}}c{{end}}',
    '{{$x := 1}}{{$x}} {{$x = 2}}{{$x}} {{$.Name}}',
    '{{html "<a&b>\\"\'"}} {{js "a\'b\\"<>&="}} {{urlquery "a b&c/d"}}',
    '{{slice "hello" 1 3}} {{slice "hello" 2}} {{index (split "a,b" ",") 1}} '
    '{{slice (split "a,b,c" ",") 1}}',
    '{{define "T"}}[{{.}}]{{end}}{{template "T" "x"}}{{template "T" .Name}}',
    '{{block "B" .Name}}<{{.}}>{{end}}',
    "{{(split \"a,b\" \",\")}} {{len (split \"a,b\" \",\")}} {{\"a\" | printf \"%s-%s\" \"b\"}}",
    "{{.Name | len | printf \"%03d\"}} {{`raw\\n`}} {{\"\\u00e9\\t|\"}} {{len \"\\u00e9\"}}",
]

ERRORS = [
    "{{.Name", "{{if 1}}x", "{{end}}", "{{nil}}", "{{nope 1}}", "{{len 3}}",
    "{{index .Name 9}}", "{{template \"missing\"}}", "{{.Name 1}}", "{{1 2}}",
    "{{range 1.5}}x{{end}}", "{{lt (split \"a\" \",\") 1}}", "{{$u}}", "{{eq 1 \"a\"}}",
]


def _go(template: str) -> subprocess.CompletedProcess:
    return subprocess.run([DOCKER, "context", "inspect", "--format", template, "default"],
                          capture_output=True, text=True, timeout=30)


@pytest.mark.skipif(DOCKER is None, reason="needs the docker CLI (Go's text/template)")
def test_renders_as_go_does():
    sep = "\x1e"
    expected = _go(sep.join(SAME_AS_GO))
    assert expected.returncode == 0, expected.stderr
    want = expected.stdout.removesuffix("\n").split(sep)
    got = render(sep.join(SAME_AS_GO), {"Name": "default"}).split(sep)
    assert len(want) == len(got) == len(SAME_AS_GO)
    for template, w, g in zip(SAME_AS_GO, want, got, strict=True):
        assert g == w, f"{template!r}: Go {w!r}, sangja {g!r}"


@pytest.mark.skipif(DOCKER is None, reason="needs the docker CLI (Go's text/template)")
@pytest.mark.parametrize("template", ERRORS)
def test_errors_where_go_errs(template):
    assert _go(template).returncode != 0
    with pytest.raises(TemplateError) as e:
        render(template, {"Name": "default"})
    assert str(e.value).startswith("template: "), e.value


MAP = {"Name": "web", "State": {"Status": "running", "Pid": 42, "Running": True},
       "Labels": {"b": "2", "a": "1"}, "Mounts": [{"Destination": "/data"}, {"Destination": "/x"}],
       "Empty": {}, "None": None, "Ratio": 0.5, "Big": 1073741824.0,
       "Label": lambda k: {"a": "1"}.get(k, "")}


@pytest.mark.parametrize("template,want", [
    ("{{.State.Status}} {{.State.Pid}} {{.State.Running}}", "running 42 true"),
    ("{{.Missing}}", "<no value>"),
    ("{{.State.Missing}}", "<no value>"),
    ("{{.None}}", "<no value>"),
    ("{{.Labels}}", "map[a:1 b:2]"),
    ("{{range $k, $v := .Labels}}{{$k}}={{$v}},{{end}}", "a=1,b=2,"),
    ("{{range .Mounts}}{{.Destination}} {{end}}", "/data /x "),
    ("{{range .Empty}}x{{else}}empty{{end}}", "empty"),
    ("{{index .Labels \"a\"}} {{index .Labels \"zz\"}}", "1 <no value>"),
    ("{{json .State}}", '{"Status":"running","Pid":42,"Running":true}'),
    ("{{json .Missing}}", "null"),
    ("{{.Label \"a\"}}|{{.Label \"q\"}}", "1|"),
    ("{{if .Missing}}y{{else}}n{{end}} {{if .State.Running}}up{{end}}", "n up"),
    ("{{with .State}}{{.Pid}}{{end}}", "42"),
    ("{{.Ratio}} {{.Big}}", "0.5 1.073741824e+09"),
    ("{{len .Mounts}} {{len .Labels}}", "2 2"),
    ("{{$.Name}} {{range .Mounts}}{{$.Name}}{{end}}", "web webweb"),
    ("{{(index .Mounts 1).Destination}}", "/x"),
])
def test_map_shaped_documents(template, want):
    assert render(template, MAP) == want


def test_field_of_a_missing_key_is_go_s_nil_error():
    with pytest.raises(TemplateError, match=r"nil pointer evaluating interface \{\}\.Bar"):
        render("{{.Missing.Bar}}", MAP)


def test_sprintf_missing_and_extra():
    assert go_sprintf("%s %d", ["a"]) == "a %!d(MISSING)"
    assert go_sprintf("%s", ["a", 1]) == "a%!(EXTRA int=1)"
