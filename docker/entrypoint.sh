#!/bin/sh
# Runs gotrue with the container's arguments. Upstream's image has no entrypoint, so its
# users write `docker run IMAGE gotrue migrate`; ours also takes `docker run IMAGE migrate`.
# Either way gotrue replaces this shell (exec): it gets the signals and is PID 1.
set -e
if [ "$1" = "gotrue" ] || [ "$1" = "/usr/local/bin/gotrue" ]; then
    shift
fi
exec /usr/local/bin/gotrue "$@"
