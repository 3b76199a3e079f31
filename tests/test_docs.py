"""The README and docs/ stay true to the repository: every relative link resolves,
every config, tool and benchmark file they name exists, and the README's config
example still wraps the stock backbone (issue 21)."""
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / 'README.md'] + sorted((REPO / 'docs').glob('*.md'))

# [text](target) and ![alt](target); the target ends at whitespace or ')'.
LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)')
# Paths named in prose, commands or code: configs/**.py, tools/*.py|sh, benchmarks/*.
NAMED = re.compile(r'(?<![\w./-])((?:configs/[\w./-]+?\.py)|(?:tools/[\w.-]+\.(?:py|sh))'
                   r'|(?:benchmarks/[\w.-]+\.\w+))(?![\w/-])')


def relative_links(text: str):
    for target in LINK.findall(text):
        if re.match(r'^[a-z][a-z0-9+.-]*:', target) or target.startswith('#'):
            continue  # https:, mailto:, or an anchor in the same page
        yield target.split('#', 1)[0]


def broken_links(page: Path):
    return [target for target in relative_links(page.read_text())
            if not (page.parent / target).exists()]


def anchors(page: Path):
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r'^```.*?^```', '', page.read_text(), flags=re.S | re.M)
    return {re.sub(r'[^\w\- ]', '', title.strip().lower()).replace(' ', '-')
            for title in re.findall(r'^#{1,6} (.+)$', text, re.M)}


def broken_anchors(page: Path):
    broken = []
    for target in LINK.findall(page.read_text()):
        if '#' not in target or re.match(r'^[a-z][a-z0-9+.-]*:', target):
            continue
        path, anchor = target.split('#', 1)
        linked = page.parent / path if path else page
        if linked.suffix == '.md' and linked.exists() and anchor not in anchors(linked):
            broken.append(target)
    return broken


def missing_paths(page: Path):
    return sorted({path for path in NAMED.findall(page.read_text())
                   if not (REPO / path).exists()})


def test_the_pages_exist():
    names = {page.name for page in PAGES}
    for name in ('setup.md', 'methods.md', 'checkpoints.md', 'tools.md', 'benchmarks.md',
                 'transfer_study.md', 'robustness.md', 'backbones.md'):
        assert name in names, name


@pytest.mark.parametrize('page', PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page):
    assert list(relative_links(page.read_text())), f'{page.name} links nothing'
    assert broken_links(page) == [], f'{page.name}: links to files that do not exist'
    assert broken_anchors(page) == [], f'{page.name}: links to headings that do not exist'


@pytest.mark.parametrize('page', PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_named_config_tool_and_benchmark_file_exists(page):
    assert missing_paths(page) == [], f'{page.name}: names paths that do not exist'


def test_the_checks_catch_a_broken_link_and_a_missing_path(tmp_path):
    page = tmp_path / 'page.md'
    page.write_text('[ok](page.md) [gone](nowhere.md#a) [web](https://example.org) [top](#a)\n'
                    'Run `python tools/no_such_tool.py configs/det/no_such.py`, '
                    'see benchmarks/no_such.json and tools/train.py.\n')
    assert broken_links(page) == ['nowhere.md']
    (tmp_path / 'other.md').write_text('# Other\n\n## The `x`: one, two\n```bash\n# not a heading\n```\n')
    page.write_text('# A\n[ok](other.md#the-x-one-two) [ok](#a) [bad](other.md#not-a-heading)\n')
    assert broken_anchors(page) == ['other.md#not-a-heading']
    page.write_text('[ok](page.md) [gone](nowhere.md#a) [web](https://example.org) [top](#a)\n'
                    'Run `python tools/no_such_tool.py configs/det/no_such.py`, '
                    'see benchmarks/no_such.json and tools/train.py.\n')
    found = set(NAMED.findall(page.read_text()))
    assert found == {'tools/no_such_tool.py', 'configs/det/no_such.py',
                     'benchmarks/no_such.json', 'tools/train.py'}
    assert missing_paths(page) == ['benchmarks/no_such.json', 'configs/det/no_such.py',
                                   'tools/no_such_tool.py']


def test_the_readme_is_short_and_keeps_the_test_command():
    text = (REPO / 'README.md').read_text()
    assert len(text.splitlines()) <= 300
    assert 'make test' in text
    # tools name this section in their error for a missing data path.
    assert '\n## Data preparation\n' in text


def test_the_readme_config_example_wraps_the_stock_backbone(tmp_path):
    pytest.importorskip('mmdet')
    from mmengine.config import Config
    text = (REPO / 'README.md').read_text()
    section = text.split('## Use it in your own config', 1)[1]
    code = re.search(r'```python\n(.*?)```', section, re.S).group(1)
    path = tmp_path / 'my_config.py'
    path.write_text(code)
    cfg = Config.fromfile(str(path))
    backbone = cfg.model.backbone
    assert backbone.type == 'protune_mm.ProTune'
    assert backbone.backbone.type == 'ResNet' and backbone.backbone.depth == 50
    assert [h['type'] for h in cfg.custom_hooks][-3:] == [
        'protune_mm.ParamReportHook', 'protune_mm.PromptCheckpointHook',
        'protune_mm.ImageRegionHook']
