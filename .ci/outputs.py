#!/usr/bin/env python
"""Run notebooks as nbdev_test does (cells marked slow or gpu skipped) and save them with their outputs, made light and
stable: figures downscaled and quantised, temporary paths, timings, pids, free space and progress-bar times masked.

    python .ci/outputs.py nbs/01_compression.ipynb [...]      # then: nbdev_clean

Re-running it on unchanged code leaves the notebooks unchanged, so outputs in the diff are real changes."""
import base64, io, json, os, re, sys, time
from pathlib import Path

from PIL import Image

MAX_W, MAX_PIXELS = 720, 250_000                # figure width, and area, in the saved notebook
SUBS = [
    (re.compile(r'/tmp/tmp[a-z0-9_]{6,}'), '$TMP'),
    (re.compile(r'/(root|home/\w+)/[^\s\'"]*?/site-packages/'), '…/site-packages/'),
    (re.compile(r'\((\d+(\.\d+)?) [GMT]B free\)'), '(… free)'),
    (re.compile(r'pid \d+ on [\w.-]+'), 'pid … on …'),
    (re.compile(r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d'), '…'),
    (re.compile(r'\b(in|took|ran in) \d+(\.\d+)?\s?s\b'), r'\1 …s'),
    (re.compile(r'\[(\d+)/(\d+) [\d:]+<[\d:?]*(, [^\]]*)?\]'), r'[\1/\2]'),
    (re.compile(r'<td>\d\d:\d\d</td>'), '<td>…</td>'),
    (re.compile(r' at 0x[0-9a-f]+'), ''),
    (re.compile(r'tcp://127\.0\.0\.1:\d+'), 'tcp://127.0.0.1:…'),
    (re.compile(r'\b\d{2}:\d{2}:\d{2} (?=[a-zA-Z])'), ''),
    # a checkpoint's name suffix hashes its config, which records its run's temporary data path
    (re.compile(r'(?<=[a-z0-9])-[0-9a-f]{8}\b(?![.\w-])'), '-…'),
]

def clean_text(s:str)->str:
    "What a terminal would show (the last state of each \\r-rewritten line), with run-dependent values masked"
    lines = []
    for l in s.split('\n'):
        if '\r' in l: l = ([x for x in l.split('\r') if x.strip()] or [''])[-1]
        lines.append(l)
    s = '\n'.join(lines)
    for rx, rep in SUBS: s = rx.sub(rep, s)
    return s

def small_png(b64:str)->str:
    "A figure at most MAX_W wide and MAX_PIXELS in area, in 128 colours"
    im = Image.open(io.BytesIO(base64.b64decode(b64)))
    scale = min(1, MAX_W / im.width, (MAX_PIXELS / (im.width * im.height)) ** 0.5)
    if scale < 1: im = im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS)
    im = im.convert('RGB').quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buf = io.BytesIO(); im.save(buf, 'PNG', optimize=True)
    return base64.b64encode(buf.getvalue()).decode()

def stable_outputs(outputs:list, # a cell's outputs, as execnb or a saved notebook holds them
                   images:bool=True, # downscale and quantise figures (not again for saved ones)
                  )->list:
    "A cell's outputs, light and stable"
    text = lambda v: ''.join(v) if isinstance(v, list) else v
    keep = []
    for o in outputs:
        t = o.get('output_type')
        if t == 'stream':
            txt = clean_text(text(o['text']))
            if not txt.strip(): continue
            keep.append({'name': o['name'], 'output_type': 'stream', 'text': txt.splitlines(True)})
        elif t in ('display_data', 'execute_result'):
            d = dict(o['data'])
            if images and 'image/png' in d: d['image/png'] = small_png(text(d['image/png']).replace('\n', ''))
            for k in d:
                if k.startswith('text/'): d[k] = clean_text(text(d[k])).splitlines(True)
            count = {'execution_count': None} if t == 'execute_result' else {}
            keep.append({'data': d, 'metadata': {}, 'output_type': t, **count})
    return keep

def run_notebook(fn:Path):
    "Execute `fn` as nbdev_test would, then write its outputs into it"
    from execnb.shell import CaptureShell
    from nbdev.process import NBProcessor
    from nbdev.frontmatter import FrontmatterProc
    from fastcore.xtras import working_directory
    os.environ['IN_TEST'] = '1'
    nb = NBProcessor(fn, procs=FrontmatterProc, process=True).nb
    skip = lambda c: c.cell_type != 'code' or bool({'slow', 'gpu'} & set((getattr(c, 'directives_', {}) or {}).keys()))
    t = time.time()
    with working_directory(fn.parent): CaptureShell(fn).run_all(nb, exc_stop=True, preproc=skip)
    raw = json.loads(fn.read_text())
    for rc, c in zip(raw['cells'], nb.cells):
        if rc['cell_type'] != 'code': continue
        hidden = (getattr(c, 'directives_', {}) or {}).get('output:', [''])[0].lower() == 'false'   # e.g. live timings
        rc['outputs'], rc['execution_count'] = [] if hidden else stable_outputs(c.get('outputs') or []), None
    fn.write_text(json.dumps(raw, indent=1, ensure_ascii=False) + '\n')
    print(f"{fn.name}: {time.time() - t:.0f}s, {fn.stat().st_size / 1024:.0f} KiB", file=sys.stderr)

def restabilize(fn:Path):
    "Apply the masks again to the outputs `fn` already holds (after a change to SUBS), without running it"
    raw = json.loads(fn.read_text())
    for c in raw['cells']:
        if c['cell_type'] == 'code': c['outputs'] = stable_outputs(c.get('outputs') or [], images=False)
    fn.write_text(json.dumps(raw, indent=1, ensure_ascii=False) + '\n')

if __name__ == '__main__':
    saved = '--saved' in sys.argv                 # only re-mask the outputs already saved
    for f in sys.argv[1:]:
        if f != '--saved': (restabilize if saved else run_notebook)(Path(f).resolve())
