#!/usr/bin/env python3
"""Opens the experiment report in headless Chromium (Debian's `chromium`).

Usage: report_browser_test.py EVONAS_REPORT_SAMPLE WORK_DIR

EVONAS_REPORT_SAMPLE renders the report and the front SVG of canned messages
(client/report_sample.cc), so no training is needed: a regression sample and,
with --classification, a classification one. For each, the test checks that:
  - the page is self-contained (no script, nothing fetched) and its inline
    SVG plots and the standalone SVG are well-formed XML;
  - Chromium logs no console message while showing it (a probe page that
    does log one proves that such messages would be seen);
  - the DOM Chromium built has every section and plot;
  - the screenshot is a real picture: the right size, mostly not blank, many
    colours, and pixels in the colours of the plotted points;
  - the error axis is the task's: max abs error for the regression, error
    rate for the classification, and never the other one.
The screenshots stay in WORK_DIR/regression/report.png and
WORK_DIR/classification/report.png for a person to look at.
Only the standard library is used.
"""

import os
import re
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
import zlib

WIDTH, HEIGHT = 1200, 2000
# Colours of the report's plots (client/report.cc).
FEASIBLE = (0x2A, 0x9D, 0x8F)
FRONT = (0xE4, 0x57, 0x2E)

failures = []
passes = []


def check(condition, message):
    print(("ok    " if condition else "FAIL  ") + message)
    (passes if condition else failures).append(message)


def chromium(work_dir, url, *extra):
    """Runs headless Chromium on `url`; returns (stdout, stderr)."""
    binary = shutil.which("chromium")
    if binary is None:
        sys.exit("chromium is not installed (deploy/install-deps.sh installs "
                 "Debian's chromium package)")
    profile = os.path.join(work_dir, "chromium-profile")
    command = [
        binary, "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync",
        "--user-data-dir=" + profile, "--enable-logging=stderr", "--v=0",
        *extra, url
    ]
    result = subprocess.run(command, capture_output=True, text=True,
                            timeout=180, check=False)
    if result.returncode != 0:
        sys.exit("chromium failed with %d:\n%s" %
                 (result.returncode, result.stderr))
    return result.stdout, result.stderr


def console_messages(stderr):
    """Lines in which Chromium logs a page's console message."""
    return [line for line in stderr.splitlines()
            if re.search(r":CONSOLE[:(]", line)]


def decode_png(path):
    """Returns (width, height, rows of (r, g, b) tuples) of an 8-bit PNG."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        sys.exit("%s is not a PNG" % path)
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour_type, _, _, interlace = header
    if depth != 8 or colour_type not in (2, 6) or interlace != 0:
        sys.exit("unexpected PNG format %r" % (header,))
    channels = 3 if colour_type == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind = raw[start]
        line = bytearray(raw[start + 1:start + 1 + stride])
        if kind == 1:
            for i in range(channels, stride):
                line[i] = (line[i] + line[i - channels]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, previous))
        elif kind == 3:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = line[i - channels] if i >= channels else 0
                b = previous[i]
                c = previous[i - channels] if i >= channels else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                predictor = a if pa <= pb and pa <= pc else (
                    b if pb <= pc else c)
                line[i] = (line[i] + predictor) & 0xFF
        rows.append(bytes(line))
        previous = line
    pixels = [[tuple(row[x * channels:x * channels + 3])
               for x in range(width)] for row in rows]
    return width, height, pixels


def near(colour, target, tolerance=6):
    return all(abs(a - b) <= tolerance for a, b in zip(colour, target))


# Each sample: its flags, text its report must show and text it must not.
SAMPLES = (
    ("regression", [], "Validation max abs error", "error rate"),
    ("classification", ["--classification"],
     "Validation error rate (1 \u2212 accuracy)", "max abs error"),
)


def probe_console(work_dir):
    """The console check must be able to fail: a page that logs is noticed."""
    probe = os.path.join(work_dir, "probe.html")
    with open(probe, "w", encoding="utf-8") as f:
        f.write("<!DOCTYPE html><p>probe</p>"
                "<script>console.error('evonas-probe')</script>")
    _, stderr = chromium(work_dir, "file://" + probe, "--dump-dom")
    check(any("evonas-probe" in line for line in console_messages(stderr)),
          "Chromium's log shows a probe page's console error")


def check_sample(sample, work_dir, name, flags, axis_title, foreign):
    """Renders one sample into work_dir/name and checks it in Chromium."""
    print("-- %s sample" % name)
    sample_dir = os.path.join(work_dir, name)
    os.makedirs(sample_dir)
    html_path = os.path.join(sample_dir, "report.html")
    svg_path = os.path.join(sample_dir, "front.svg")
    png_path = os.path.join(sample_dir, "report.png")
    subprocess.run([sample, *flags, html_path, svg_path], check=True,
                   timeout=60)

    # Self-contained and well-formed.
    with open(html_path, encoding="utf-8") as f:
        html = f.read()
    check("<script" not in html.lower(), "the report has no script")
    check(not re.search(r"""(src|href)\s*=""", html, re.I),
          "the report references no other file")
    check("Content-Security-Policy" in html,
          "a Content-Security-Policy forbids fetching anything")
    plots = re.findall(r"<svg .*?</svg>", html, re.S)
    check(len(plots) == 4, "the report has 4 inline SVG plots (%d)" %
          len(plots))
    for i, plot in enumerate(plots):
        try:
            ElementTree.fromstring(plot)
            check(True, "inline plot %d is well-formed XML" % (i + 1))
        except ElementTree.ParseError as error:
            check(False, "inline plot %d is well-formed XML: %s" % (i + 1,
                                                                   error))
    try:
        root = ElementTree.parse(svg_path).getroot()
        check(root.tag == "{http://www.w3.org/2000/svg}svg",
              "front.svg is an SVG document")
    except ElementTree.ParseError as error:
        check(False, "front.svg is well-formed XML: %s" % error)
    with open(svg_path, encoding="utf-8") as f:
        svg = f.read()
    check(axis_title in svg and foreign not in svg,
          "front.svg plots %r, not %r" % (axis_title, foreign))

    # The report: no console message, the expected DOM, a real screenshot.
    url = "file://" + os.path.abspath(html_path)
    dom, stderr = chromium(work_dir, url, "--dump-dom")
    messages = console_messages(stderr)
    check(not messages, "no console messages while loading the report%s" %
          "".join("\n      " + m for m in messages))
    for heading in ("Requirements", "Pareto front", "Candidates on the front",
                    "Search progress", "Data and search"):
        check("<h2>%s</h2>" % heading in dom, "the DOM has section " + heading)
    check(dom.count("<svg ") == 4, "the DOM has 4 SVG elements")
    check(dom.count(">%s</text>" % axis_title) == 3 and foreign not in dom,
          "the DOM's 3 error axes say %r, nothing says %r" %
          (axis_title, foreign))

    _, stderr = chromium(work_dir, url, "--screenshot=" + png_path,
                         "--window-size=%d,%d" % (WIDTH, HEIGHT))
    messages = console_messages(stderr)
    check(not messages, "no console messages while taking the screenshot%s" %
          "".join("\n      " + m for m in messages))
    check(os.path.exists(png_path) and os.path.getsize(png_path) > 50_000,
          "the screenshot exists and is over 50 kB (%d bytes)" %
          (os.path.getsize(png_path) if os.path.exists(png_path) else 0))
    width, height, pixels = decode_png(png_path)
    check((width, height) == (WIDTH, HEIGHT),
          "the screenshot is %dx%d (%dx%d)" % (WIDTH, HEIGHT, width, height))
    counts = {}
    for row in pixels:
        for pixel in row:
            counts[pixel] = counts.get(pixel, 0) + 1
    background, most = max(counts.items(), key=lambda item: item[1])
    check(most < 0.8 * width * height,
          "the page is not blank: the commonest colour %r covers %.0f%%" %
          (background, 100.0 * most / (width * height)))
    check(len(counts) > 500, "the page has many colours (%d)" % len(counts))
    feasible = sum(n for c, n in counts.items() if near(c, FEASIBLE))
    front = sum(n for c, n in counts.items() if near(c, FRONT))
    check(feasible > 200, "feasible points are drawn (%d teal pixels)" %
          feasible)
    check(front > 200, "the front is highlighted (%d orange pixels)" % front)

    print("screenshot: " + png_path)


def main():
    sample, work_dir = sys.argv[1], sys.argv[2]
    shutil.rmtree(work_dir, ignore_errors=True)
    os.makedirs(work_dir)
    probe_console(work_dir)
    for name, flags, axis_title, foreign in SAMPLES:
        check_sample(sample, work_dir, name, flags, axis_title, foreign)
    print("report checks: %d passed, %d failed" % (len(passes), len(failures)))
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
