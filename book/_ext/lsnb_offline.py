"""Sphinx extension of the lsnb book: every page's scripts once, and nothing loaded from the network.

Jupyter Book 1 always loads ``sphinx-thebe``, whose inline configuration
script (``const THEBE_JS_URL = ...``) ends up twice in each page; the second
copy is a console error ("Identifier has already been declared") in every
browser.  The book does not use Thebe (``launch_buttons.thebe: false``), so
this extension keeps the first copy of each script and drops repeats.  It runs
early (priority 100): ``html-page-context`` is emitted with ``emit_firstresult``,
so a late handler is skipped once a theme's handler returns a template name.

It also gives the pydata theme its ``default_mode`` ("auto": follow the
reader's system).  The template reads that variable but nothing sets it, so
every first visit logged the console error "Got invalid theme mode".
"""
from __future__ import annotations


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    context["default_mode"] = context.get("default_mode") or "auto"
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        # the same file or inline body counts once, whatever priority each copy was added with
        key = (str(getattr(script, "filename", script) or ""),  # inline scripts: None or ""
               tuple(sorted((getattr(script, "attributes", None) or {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    scripts[:] = kept  # in place: later handlers (sphinx.ext.mathjax) append to this very list


def setup(app):
    app.connect("html-page-context", _dedupe_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
