"""The robustness run: one Runner, its test loop re-run once per corruption and
severity with ``protune_mm.Corrupt`` inserted after the image is loaded.

The model is built and its checkpoint / pack loaded once; only the test
dataloader is rebuilt per evaluation (so worker processes get the new pipeline).
The clean evaluation runs the config's own test dataloader, unchanged, i.e.
exactly what tools/test.py evaluates. Results are written atomically after every
evaluation; ``resume=True`` keeps those already in the file.
"""
import copy
import json
import os.path as osp
import time
from collections import OrderedDict
from datetime import timedelta

from mmengine.config import Config
from mmengine.logging import print_log

from .corruptions import FAMILIES
from .report import format_table, headline_keys, plot, summarise, write_json

#: a results file belongs to a run when these agree (checked on resume).
IDENTITY = ('config', 'checkpoint', 'prompts', 'seed', 'cfg_options')


def corrupted_dataloader(dataloader: dict, corruption: str, severity: int,
                         seed: int) -> dict:
    """A copy of a dataloader config with ``protune_mm.Corrupt`` right after the
    first image-loading step of its dataset's pipeline."""
    dataloader = copy.deepcopy(dataloader)
    pipeline = dataloader['dataset'].get('pipeline')
    if pipeline is None:
        raise ValueError('test_dataloader.dataset.pipeline: not found; the corruption '
                         'goes into the test pipeline after the image is loaded')
    loads = [i for i, t in enumerate(pipeline)
             if 'LoadImage' in str(t.get('type', '')).split('.')[-1]]
    if not loads:
        raise ValueError('test_dataloader.dataset.pipeline has no image-loading step '
                         '(LoadImageFromFile...); the corruption goes right after it')
    pipeline.insert(loads[0] + 1, dict(type='protune_mm.Corrupt', corruption=corruption,
                                       severity=severity, seed=seed))
    return dataloader


def plan_of(corruptions, severities) -> list:
    """(corruption, severity) pairs to evaluate; ('clean', 0) first."""
    return [('clean', 0)] + [(c, s) for c in corruptions for s in severities if s > 0]


def _numbers(metrics: dict) -> dict:
    out = OrderedDict()
    for k, v in metrics.items():
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            continue
    return out


def load_results(path: str, identity: dict) -> dict:
    """The evaluations of an earlier run of the same identity (config, checkpoint,
    prompts, seed, cfg options); a file of another run is refused, naming the field."""
    with open(path) as f:
        old = json.load(f)
    for key in IDENTITY:
        if old.get('identity', {}).get(key) != identity[key]:
            raise ValueError(
                f'--resume: {path} holds the results of another run ({key}: '
                f"{old.get('identity', {}).get(key)!r}, this run: {identity[key]!r}); "
                'use another --results file or leave out --resume to start over')
    return old.get('evaluations', {})


def run_robustness(cfg: Config, identity: dict, corruptions, severities, results: str,
                   resume: bool = False, build_runner=None) -> dict:
    """Evaluate ``cfg`` (with ``load_from`` set) clean and under every corruption
    and severity; returns the report written to ``results`` (JSON) and its chart
    (``results`` with .png)."""
    from mmengine.runner import Runner
    evaluations = OrderedDict()
    if resume and osp.exists(results):
        evaluations.update(load_results(results, identity))
    plan = plan_of(corruptions, severities)

    def done(c, s):
        return str(s) in evaluations.get(c, {})

    todo = [(c, s) for c, s in plan if not done(c, s)]
    runner = (build_runner or Runner.from_cfg)(cfg)
    loop = runner.test_loop
    runner.call_hook('before_run')
    runner.load_or_resume()  # the checkpoint / pack, through the checkpoint policy
    clean_loader = loop.dataloader
    if resume:
        print_log(f'robustness: resuming from {results}: {len(plan) - len(todo)} of '
                  f'{len(plan)} evaluations done', logger='current')
    start, finished = time.perf_counter(), 0
    for corruption, severity in todo:
        index = plan.index((corruption, severity)) + 1
        if severity == 0:
            loop.dataloader = clean_loader
        else:
            loop.dataloader = runner.build_dataloader(
                corrupted_dataloader(cfg.test_dataloader, corruption, severity,
                                     identity['seed']),
                seed=runner.seed)
        metrics = _numbers(loop.run())
        evaluations.setdefault(corruption, OrderedDict())[str(severity)] = metrics
        report = make_report(identity, corruptions, severities, evaluations)
        write_json(report, results)
        finished += 1
        elapsed = time.perf_counter() - start
        left = len(todo) - finished
        shown = ', '.join(f'{k} {metrics[k]:.4g}' for k in headline_keys(metrics))
        print_log(f'robustness [{index}/{len(plan)}] {corruption} severity {severity}: '
                  f'{shown} | elapsed {timedelta(seconds=round(elapsed))}, remaining '
                  f'~{timedelta(seconds=round(elapsed / finished * left))}',
                  logger='current')
    loop.dataloader = clean_loader
    runner.call_hook('after_run')
    report = make_report(identity, corruptions, severities, evaluations)
    write_json(report, results)
    if 'clean' in evaluations:
        corrupted = _corrupted(evaluations, corruptions, severities)
        plot(evaluations['clean']['0'], corrupted, osp.splitext(results)[0] + '.png',
             title=f"{osp.basename(identity['config'])}: {osp.basename(identity['checkpoint'])}")
        print('\n'.join(report['table']))
    return report


def _corrupted(evaluations: dict, corruptions, severities) -> OrderedDict:
    return OrderedDict(
        (c, OrderedDict((str(s), evaluations[c][str(s)]) for s in severities
                        if s > 0 and str(s) in evaluations.get(c, {})))
        for c in corruptions if c in evaluations)


def make_report(identity: dict, corruptions, severities, evaluations: dict) -> dict:
    """The JSON: identity, plan, every evaluation's metrics and, once the clean
    one is there, mPC / rPC of the headline metrics and the table."""
    plan = plan_of(corruptions, severities)
    report = OrderedDict(
        tool='tools/test_robustness.py', identity=identity,
        corruptions=list(corruptions), severities=[s for s in severities if s > 0],
        families={f: [c for c in names if c in corruptions]
                  for f, names in FAMILIES.items()},
        complete=all(str(s) in evaluations.get(c, {}) for c, s in plan),
        evaluations=evaluations)
    if 'clean' in evaluations:
        clean = evaluations['clean']['0']
        corrupted = _corrupted(evaluations, corruptions, severities)
        report['summary'] = summarise(clean, corrupted)
        report['table'] = format_table(clean, corrupted, report['severities']).splitlines()
    return report
