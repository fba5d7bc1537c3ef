/*
 * /init of the initramfs that tools/emulated_isas.sh boots under Bochs: prints the CPU
 * flags the kernel enabled (no avx512f there means the emulated CPU or the kernel hid it),
 * runs /harness with the arguments the kernel command line gives after "--", prints its
 * exit status and a marker on the serial console, and powers the machine off.
 *   gcc -O2 -static -o init tools/emu_init.c
 */
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    (void)argc;
    mkdir("/proc", 0555);
    if (mount("proc", "/proc", "proc", 0, NULL) == 0) {
        FILE *f = fopen("/proc/cpuinfo", "r");
        char line[8192];
        while (f && fgets(line, sizeof line, f)) {
            if (!strncmp(line, "model name", 10) || !strncmp(line, "flags", 5)) {
                fputs(line, stdout);
                if (!strncmp(line, "flags", 5)) break;
            }
        }
        if (f) fclose(f);
    }
    printf("emu_init: starting /harness\n");
    fflush(stdout);
    const pid_t pid = fork();
    if (pid == 0) {
        argv[0] = "/harness";
        execv("/harness", argv);
        perror("emu_init: execv /harness");
        _exit(127);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) < 0) status = 127 << 8;
    printf("emu_init: harness exit status %d%s\nEMU_DONE\n",
           WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
           WIFSIGNALED(status) ? " (killed by a signal)" : "");
    fflush(stdout);
    tcdrain(1); /* the UART sends it all before the power goes */
    sleep(1);
    sync();
    reboot(RB_POWER_OFF);
    return 0;
}
