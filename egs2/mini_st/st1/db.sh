# Where corpora live. The demo corpus is generated here by local/data.sh.
MINI_ST=${MINI_ST:-downloads/mini_st}
