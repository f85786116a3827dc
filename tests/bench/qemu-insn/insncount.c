/*
 * A qemu TCG plugin (qemu-user 7.2+, plugin API version 1) counting the guest
 * instructions executed by every thread; the total is written at exit to the
 * file given as `out=PATH` (stderr without it):
 *
 *   qemu-aarch64 -L /usr/aarch64-linux-gnu -plugin ./libinsncount.so,out=count.txt ./prog
 *
 * Each translated block gets a callback adding its instruction count
 * atomically (threads run in parallel under qemu-user). Built by
 * tests/bench/instructions.sh --aarch64 with the host's cc; only the few
 * functions of qemu's plugin API it uses are declared here.
 */
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
typedef struct qemu_info_t qemu_info_t;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };

extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id,
                                                  void (*cb)(qemu_plugin_id_t, struct qemu_plugin_tb *));
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
extern void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, void (*cb)(unsigned int, void *),
                                                 enum qemu_plugin_cb_flags flags, void *userdata);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, void (*cb)(qemu_plugin_id_t, void *),
                                           void *userdata);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

static _Atomic uint64_t total;
static const char *out_path;

static void exec_tb(unsigned int vcpu, void *n)
{
    (void)vcpu;
    atomic_fetch_add_explicit(&total, (uint64_t)(uintptr_t)n, memory_order_relaxed);
}

static void trans_tb(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_cb(tb, exec_tb, QEMU_PLUGIN_CB_NO_REGS,
                                         (void *)(uintptr_t)qemu_plugin_tb_n_insns(tb));
}

static void at_exit(qemu_plugin_id_t id, void *p)
{
    (void)id;
    (void)p;
    FILE *f = out_path ? fopen(out_path, "w") : stderr;
    if (f) {
        fprintf(f, "insns: %llu\n", (unsigned long long)atomic_load(&total));
        if (f != stderr)
            fclose(f);
    }
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                                               int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++)
        if (strncmp(argv[i], "out=", 4) == 0)
            out_path = argv[i] + 4;
    qemu_plugin_register_vcpu_tb_trans_cb(id, trans_tb);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
