# How stage jobs run. `${train_cmd} JOB=1:N <log> <command>` runs an array of
# N tasks; the command's JOB is replaced by the task index, each task logs
# to its own file, and a failed task fails the stage, naming its log.
#   cmd_backend=local : parallel processes on this machine (the default)
#   cmd_backend=slurm : one Slurm array job per stage (sbatch), waited for;
#                       resources -> sbatch flags through ${slurm_config}
# Choose with `cmd_backend=slurm ./run.sh ...` or by editing the default here.
cmd_backend=${cmd_backend:-local}
# Partitions, GRES, account, QoS, default time/memory: see the template's comments.
slurm_config=${slurm_config:-conf/slurm.yaml}
[ -f "${slurm_config}" ] || slurm_config=${MAIN_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}/egs2/TEMPLATE/st1/conf/slurm.yaml

case "${cmd_backend}" in
    local)
        train_cmd="python -m espnet_mtl.bin.run_jobs --backend local"
        cuda_cmd="python -m espnet_mtl.bin.run_jobs --backend local"
        decode_cmd="python -m espnet_mtl.bin.run_jobs --backend local"
        ;;
    slurm)
        train_cmd="python -m espnet_mtl.bin.run_jobs --backend slurm --backend_config ${slurm_config}"
        cuda_cmd="python -m espnet_mtl.bin.run_jobs --backend slurm --backend_config ${slurm_config}"
        decode_cmd="python -m espnet_mtl.bin.run_jobs --backend slurm --backend_config ${slurm_config}"
        ;;
    *)
        echo "cmd.sh: unknown cmd_backend=${cmd_backend} (known: local, slurm)" >&2
        return 1
        ;;
esac
