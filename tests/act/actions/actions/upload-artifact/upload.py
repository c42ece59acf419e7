"""The stub's upload: copy the named paths into $ACT_STUB_ARTIFACTS/$NAME (see action.yml)."""
import os
import shutil
import sys

paths = [p.strip() for p in os.environ["PATHS"].splitlines() if p.strip()]
present = [p for p in paths if os.path.exists(p)]
hidden = os.environ["HIDDEN"] == "true"
target = os.path.join(os.environ["ACT_STUB_ARTIFACTS"], os.environ["NAME"])
if not present:
    print(f"stub upload-artifact: no files at {paths}", file=sys.stderr)
    sys.exit(1 if os.environ["MISSING"] == "error" else 0)
root = os.path.commonpath([os.path.abspath(p) for p in present])
if len(present) == 1 and os.path.isdir(present[0]):
    root = os.path.abspath(present[0])
elif len(present) == 1:
    root = os.path.dirname(os.path.abspath(present[0]))
for path in present:
    for top, dirs, files in os.walk(path) if os.path.isdir(path) else [(os.path.dirname(path) or ".", [], [os.path.basename(path)])]:
        if not hidden:
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            files = [f for f in files if not f.startswith(".")]
        for name in files:
            source = os.path.abspath(os.path.join(top, name))
            rel = os.path.relpath(source, root)
            if not hidden and any(part.startswith(".") for part in rel.split(os.sep)):
                continue  # the real action leaves hidden files out unless asked
            os.makedirs(os.path.dirname(os.path.join(target, rel)), exist_ok=True)
            shutil.copy2(source, os.path.join(target, rel))
print(f"stub upload-artifact: {os.environ['NAME']} from {present}")
