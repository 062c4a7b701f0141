#!/bin/sh
# stateless boot hook for ESXi: run the agent once the network is up, so the host announces
# itself (birth) to the nearest statelessd and gets configured.
#
# Install: `stateless agent bundle --module -o stateless.tgz` writes the boot module that
# carries this file (/opt/stateless/stateless-boot.sh), the agent (/opt/stateless/agent.pyz)
# and /etc/rc.local.d/999.stateless.sh, which starts this file in the background at the end
# of boot; the boot.cfg statelessd renders lists the module after the image's own, so a stock
# image needs no rebuild (docs/boot.md). By hand instead: put agent.pyz at
# /opt/stateless/agent.pyz, this file in a VIB or the image's state archive, and call it from
# /etc/rc.local.d/local.sh in the background:
#     /bin/sh /opt/stateless/stateless-boot.sh &
#
# It reads the kernel command line that PXE/iPXE passed (`bootOption -o` on ESXi; the same
# text as /proc/cmdline on Linux), for example:
#     BOOTIF=01-00-50-56-aa-bb-cc stateless.server=http://10.0.0.5:8080
#     stateless.site=paris stateless.domain=example.com stateless.nameserver=10.0.0.53
# The agent takes stateless.site=, stateless.server=, stateless.domain=,
# stateless.nameserver=, stateless.dns-timeout=, stateless.enroll-key= and stateless.ca= from
# it (see docs/discovery.md and docs/security.md). Without stateless.domain= the first DNS
# search domain of the host is used. The enrollment key never reaches the log.

AGENT=${STATELESS_AGENT:-/opt/stateless/agent.pyz}
PYTHON=${STATELESS_PYTHON:-/bin/python}
TIMEOUT=${STATELESS_TIMEOUT:-1800}
TAG=stateless-agent

log() { logger -t "$TAG" "$*" 2>/dev/null || echo "$TAG: $*" >&2; }
# Each knob above can be set in the environment; STATELESS_IDENTITY=FILE skips esxcli,
# STATELESS_STATE=FILE says where the agent keeps its state.

[ -f "$AGENT" ] || { log "no agent at $AGENT; nothing to do"; exit 0; }

if command -v bootOption >/dev/null 2>&1; then
    CMDLINE=$(bootOption -o 2>/dev/null)
elif [ -r /proc/cmdline ]; then
    CMDLINE=$(cat /proc/cmdline)
else
    CMDLINE=""
fi

set -- --cmdline "$CMDLINE" --timeout "$TIMEOUT" --wait-compliant
# A simulated host (no esxcli) names its identity document instead.
[ -n "$STATELESS_IDENTITY" ] && set -- "$@" --identity "$STATELESS_IDENTITY"
case " $CMDLINE " in
    *" stateless.domain="*) ;;
    *)
        DOMAIN=$(esxcli network ip dns search list 2>/dev/null \
                 | sed -n 's/^ *DNS Search Domains: *//p' | cut -d, -f1 | tr -d ' ')
        [ -n "$DOMAIN" ] && set -- "$@" --domain "$DOMAIN"
        ;;
esac

# Keep the referral's site across reboots where the host has persistent scratch space.
if [ -n "$STATELESS_STATE" ]; then
    set -- "$@" --state "$STATELESS_STATE"
elif [ -d /scratch ] && [ -w /scratch ]; then
    set -- "$@" --state /scratch/stateless/agent-state.json
else
    set -- "$@" --state /var/run/stateless/agent-state.json
fi

log "starting: $PYTHON $AGENT $(printf '%s ' "$@" | sed 's/stateless\.enroll-key=[^ ]*/stateless.enroll-key=<secret>/g')"
"$PYTHON" "$AGENT" "$@" 2>&1 | while IFS= read -r line; do log "$line"; done
