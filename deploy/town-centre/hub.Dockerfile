# The gridcall hub for deploy/town-centre/compose.yaml (build context: the repository root).
FROM python:3.11-slim

WORKDIR /opt/gridcall
# Only what the package needs (pyproject's packages), so a change elsewhere (docs, tests)
# does not invalidate the install layer.
COPY pyproject.toml README.md ./
COPY config ./config
COPY detectors ./detectors
COPY firmware_bridge ./firmware_bridge
COPY edge_agent ./edge_agent
COPY hub ./hub
COPY simulators ./simulators
# gridcall/ holds wire/ and symlinks to the folders above (gridcall/hub -> ../hub), which
# resolve because they are copied to the same places
COPY gridcall ./gridcall
RUN pip install --no-cache-dir '.[hub]' && useradd --system --home /var/lib/gridcall gridcall \
    && mkdir -p /var/lib/gridcall && chown gridcall /var/lib/gridcall

USER gridcall
WORKDIR /var/lib/gridcall
EXPOSE 8470
CMD ["gridcall", "hub", "run", "--config", "/etc/gridcall", "--api", "0.0.0.0:8470"]
