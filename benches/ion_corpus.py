"""Rewrite a DYNAMODB_JSON full export as an ION export, item for item, for benchmarks.

    python3 benches/ion_corpus.py /tmp/bench/c2m /tmp/bench/c2m-ion

SRC_ROOT holds AWSDynamoDB/<ExportId>/ (e.g. the 2M corpus of ../shared/bench); the
ION export is written under OUT_ROOT with the same export id, `.ion.gz` data files,
fresh MD5s and `outputFormat: ION`. Numbers are spelled the way DynamoDB's ION export
spells them (`103.`, `6d2`, `0.0015`, `1d-130`), independently of dynolake's writer.
"""
import base64, gzip, hashlib, json, os, re, sys
from multiprocessing import Pool

IDENT = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')

def num(n):
    neg = n.startswith('-')
    n = n.lstrip('+-')
    m, _, e = n.replace('E', 'e').partition('e')
    exp = int(e) if e else 0
    i, _, f = m.partition('.')
    digits = (i + f).lstrip('0')
    exp -= len(f)
    if not digits:
        return '0.'
    t = len(digits) - len(digits.rstrip('0'))
    digits = digits.rstrip('0'); exp += t
    s = '-' if neg else ''
    if exp == 0:
        return f'{s}{digits}.'
    if exp > 0:
        return f'{s}{digits}d{exp}'
    k = len(digits)
    plain = f'{digits[:k+exp]}.{digits[k+exp:]}' if k + exp > 0 else '0.' + '0' * (-exp - k) + digits
    return s + plain if len(plain) <= 40 else f'{s}{digits}d{exp}'

def sstr(x, q='"'):
    out = [q]
    for c in x:
        o = ord(c)
        if c == '\\': out.append('\\\\')
        elif c == q: out.append('\\' + q)
        elif c == '\n': out.append('\\n')
        elif c == '\r': out.append('\\r')
        elif c == '\t': out.append('\\t')
        elif o < 0x20 or o == 0x7f: out.append('\\x%02x' % o)
        else: out.append(c)
    out.append(q)
    return ''.join(out)

def name(k):
    return k if IDENT.match(k) and k not in ('null', 'true', 'false', 'nan') else sstr(k, "'")

def val(v):
    (d, x), = v.items()
    if d == 'S': return sstr(x)
    if d == 'N': return num(x)
    if d == 'B': return '{{' + x + '}}'
    if d == 'BOOL': return 'true' if x else 'false'
    if d == 'NULL': return 'null'
    if d == 'M': return item(x)
    if d == 'L': return '[' + ','.join(val(e) for e in x) + ']'
    if d == 'SS': return '$dynamodb_SS::[' + ','.join(sstr(e) for e in x) + ']'
    if d == 'NS': return '$dynamodb_NS::[' + ','.join(num(e) for e in x) + ']'
    if d == 'BS': return '$dynamodb_BS::[' + ','.join('{{' + e + '}}' for e in x) + ']'
    raise ValueError(d)

def item(m):
    return '{' + ','.join(name(k) + ':' + val(v) for k, v in m.items()) + '}'

def convert(args):
    src, dst = args
    with gzip.open(src, 'rt', encoding='utf-8') as f, gzip.open(dst, 'wt', encoding='utf-8', compresslevel=6) as g:
        for line in f:
            if line.strip():
                g.write('$ion_1_0 {Item:' + item(json.loads(line)['Item']) + '}\n')
    return dst

def main(src_root, dst_root):
    exp = [d for d in os.listdir(os.path.join(src_root, 'AWSDynamoDB')) if d[0] == '0'][0]
    sdir = os.path.join(src_root, 'AWSDynamoDB', exp)
    ddir = os.path.join(dst_root, 'AWSDynamoDB', exp)
    os.makedirs(os.path.join(ddir, 'data'), exist_ok=True)
    entries = [json.loads(l) for l in open(os.path.join(sdir, 'manifest-files.json'))]
    jobs = []
    for e in entries:
        key = e['dataFileS3Key'].replace('.json.gz', '.ion.gz')
        jobs.append((os.path.join(src_root, e['dataFileS3Key']), os.path.join(dst_root, key)))
        e['dataFileS3Key'] = key
    with Pool(2) as p:
        p.map(convert, jobs)
    lines = []
    for e, (_, dst) in zip(entries, jobs):
        e['md5Checksum'] = base64.b64encode(hashlib.md5(open(dst, 'rb').read()).digest()).decode()
        lines.append(json.dumps(e, separators=(',', ':')))
    mf = '\n'.join(lines) + '\n'
    open(os.path.join(ddir, 'manifest-files.json'), 'w').write(mf)
    open(os.path.join(ddir, 'manifest-files.md5'), 'w').write(base64.b64encode(hashlib.md5(mf.encode()).digest()).decode())
    s = json.load(open(os.path.join(sdir, 'manifest-summary.json')))
    s['outputFormat'] = 'ION'
    st = json.dumps(s, separators=(',', ':'))
    open(os.path.join(ddir, 'manifest-summary.json'), 'w').write(st)
    open(os.path.join(ddir, 'manifest-summary.md5'), 'w').write(base64.b64encode(hashlib.md5(st.encode()).digest()).decode())
    open(os.path.join(ddir, '_started'), 'w').close()

if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
