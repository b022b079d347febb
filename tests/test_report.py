from blobhelpers.core.report import header_markdown, strip_remote_scripts, versions


def test_remote_scripts_are_removed_local_kept():
    html = ('<html><script src="https://cdn.example/mathjax.js"></script>'
            '<script type="module">const m = (await import("https://cdn.example/mermaid.mjs")).default;</script>'
            '<link rel="stylesheet" href="https://fonts.example/css">'
            '<script>var local = 1;</script><img src="data:image/png;base64,AAAA"></html>')
    out = strip_remote_scripts(html)
    assert "https://" not in out
    assert "var local = 1" in out and "data:image/png" in out


def test_header_lists_parameters_and_versions():
    md = header_markdown("T", {"base": {"seed": 3}, "simulate": {"n_frames": 5, "nested": {"a": 1}}},
                         ["base", "simulate"])
    assert "`base.seed` | `3`" in md and "`simulate.nested.a` | `1`" in md
    v = versions()
    assert "numpy" in v and "blobhelpers" in v and "python" in v
    assert "| numpy |" in md
