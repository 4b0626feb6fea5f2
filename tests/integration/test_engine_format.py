"""--format: Go's text/template as Docker runs it (sangja.cli.gotemplate), through the
commands that take it; a template that fails is one line and exit 1, as with docker."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.root


def test_inspect_and_ps_templates(cli, tmp_path):
    cid = cli.detach("--name", "fmt-web", "-e", "A=1", "-v", f"{tmp_path}:/data",
                     "--label", "tier=web", "busybox", "sleep", "1000")
    out = cli.ok("inspect", "-f", "{{range .Mounts}}{{.Destination}} {{end}}"
                 "{{if .State.Running}}up{{else}}down{{end}} {{len .Name}} "
                 "{{index .Config.Labels \"tier\"}} {{json .Config.Labels}}", cid)
    assert out == '/data up 8 web {"tier":"web"}\n'
    env = json.loads(cli.ok("inspect", "-f", "{{json .Config.Env}}", cid))
    assert "A=1" in env
    rows = cli.ok("ps", "--format", "{{.Names}}\\t{{upper .State}}", "--filter",
                  f"id={cid}").splitlines()
    assert rows == ["fmt-web\tRUNNING"]
    assert cli.ok("inspect", "-f", '{{printf "%-10s|" .State.Status}}', cid) == "running   |\n"


@pytest.mark.parametrize("template, code", [
    ("{{.State.Nope.Deeper}}", 1), ("{{range .State.Status}}x{{end}}", 1),  # cannot run
    ("{{", 64), ("{{nosuchfunc .Id}}", 64)])  # does not parse: docker's CLI exits 64
def test_a_failing_template_is_one_line_and_docker_exit_code(cli, template, code):
    cid = cli.detach("busybox", "sleep", "1000")
    line = cli.fails(code, "inspect", "-f", template, cid)
    assert line.startswith("sangja: template parsing error: template: "), line
