# shellcheck shell=bash
# Fills the configuration templates of scripts/lib (*.toml.in), source it.
# testbed/src/lib.rs (`Fields::fill`) fills them by the same rule, and a
# testbed test checks that both give the same bytes.
#
# fill_template TEMPLATE FIELD=VALUE...: prints TEMPLATE with every
# @FIELD@ replaced by its VALUE (a later FIELD=VALUE wins), where
#   - a line holding a field with no value (not given, or empty) is left
#     out, so the program reading the file takes its own default;
#   - a field written ["@FIELD@"] takes a comma-separated list:
#     a,b becomes ["a", "b"];
#   - a [table] or [[table]] left with no key line is left out whole, with
#     its blank and comment lines;
#   - lines starting with ## (notes on the template) are left out, and so
#     are blank lines at the end.
# A FIELD the template does not hold is an error (exit status 2): a typo
# would otherwise leave the field out without a word.
fill_template() { # TEMPLATE FIELD=VALUE...
    local template="$1" arg name value line rest list block="" out="" has_key=1
    shift
    local -A values=()
    local fields
    fields="$(grep -o '@[a-z0-9_.]*@' "$template" | sort -u)" || {
        echo "fill_template: no fields in $template" >&2
        return 2
    }
    for arg in "$@"; do
        name="${arg%%=*}"
        if [[ "$arg" != *=* ]] || ! grep -qxF "@$name@" <<<"$fields"; then
            echo "fill_template: $template has no field ${name:-(empty)} (given: $arg)" >&2
            return 2
        fi
        values[$name]="${arg#*=}"
    done
    while IFS= read -r line || [ -n "$line" ]; do
        [[ "$line" == '##'* ]] && continue
        rest="$line"
        while [[ "$rest" =~ @([a-z0-9_.]+)@ ]]; do
            name="${BASH_REMATCH[1]}"
            rest="${rest#*"@$name@"}"
            value="${values[$name]:-}"
            [ -n "$value" ] || continue 2
            list="[\"@$name@\"]"
            [[ "$line" == *"$list"* ]] && value="${value//,/\", \"}"
            line="${line//"@$name@"/"$value"}"
        done
        if [[ "$line" == '['* ]]; then
            [ "$has_key" = 1 ] && out+="$block"
            block=""
            has_key=0
        elif [[ -n "$line" && "$line" != '#'* ]]; then
            has_key=1
        fi
        block+="$line"$'\n'
    done <"$template"
    [ "$has_key" = 1 ] && out+="$block"
    while [[ "$out" == *$'\n\n' ]]; do out="${out%$'\n'}"; done
    printf '%s' "$out"
}
