# How stage jobs run. `${train_cmd} JOB=1:N <log> <command>` runs an array of
# N tasks; the command's JOB is replaced by the task index, each task logs
# to its own file, and a failed task fails the stage, naming its log.
#   cmd_backend=local : parallel processes on this machine
#   (a slurm backend, with conf/slurm.conf, comes with the Slurm issue)
cmd_backend=${cmd_backend:-local}

case "${cmd_backend}" in
    local)
        train_cmd="python -m espnet_mtl.bin.run_jobs --backend local"
        cuda_cmd="python -m espnet_mtl.bin.run_jobs --backend local"
        decode_cmd="python -m espnet_mtl.bin.run_jobs --backend local"
        ;;
    *)
        echo "cmd.sh: unknown cmd_backend=${cmd_backend} (known: local)" >&2
        return 1
        ;;
esac
