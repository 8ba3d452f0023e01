# Sourced by a recipe's run.sh: read the recipe's own options, pass the rest on.
#
#   tgt_lang=de; version=v1                      # defaults
#   . ./recipe_options.sh "tgt_lang=de|es|fr" "version=v1|v1.2" -- "$@"
#   ./st.sh ... "${args[@]+"${args[@]}"}"
#
# Each spec is `name` (any non-empty value) or `name=a|b|c` (one of these).
# `--name value` and `--name=value` set the variable (later ones win); a
# missing or empty value, or one outside the choices, is an error naming the
# option before anything runs. Every other argument, in order, is left in
# the array `args` for st.sh, which checks its own options.
_recipe_specs=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do _recipe_specs+=("$1"); shift; done
[ $# -gt 0 ] && shift
args=()
while [ $# -gt 0 ]; do
    _arg=$1; shift
    _taken=false
    for _spec in "${_recipe_specs[@]}"; do
        _name=${_spec%%=*}
        case "${_arg}" in
            "--${_name}="*) _value=${_arg#*=} ;;
            "--${_name}")
                if [ $# -eq 0 ]; then echo "$0: option --${_name} needs a value" >&2; exit 2; fi
                _value=$1; shift ;;
            *) continue ;;
        esac
        if [ -z "${_value}" ]; then echo "$0: option --${_name} needs a value" >&2; exit 2; fi
        if [ "${_spec}" != "${_name}" ]; then
            case "|${_spec#*=}|" in
                *"|${_value}|"*) ;;
                *) echo "$0: --${_name} takes one of ${_spec#*=} (got '${_value}')" >&2; exit 2 ;;
            esac
        fi
        printf -v "${_name}" '%s' "${_value}"
        _taken=true
        break
    done
    "${_taken}" || args+=("${_arg}")
done
unset _recipe_specs _arg _taken _spec _name _value
