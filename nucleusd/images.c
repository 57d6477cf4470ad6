// SPDX-License-Identifier: Apache-2.0
/*
 * Images and workspaces of the vmm backend (internals: nucleusd/backend-vm.h): the one
 * image name rule of every backend (nd_image__check), the kernel and initramfs an image stands for, workspace disk paths and
 * their creation (mke2fs, on a worker).
 *
 * An image is "default" (the daemon's --kernel/--initrd) or DATA/images/NAME/ with
 * initramfs.cpio.gz and optionally vmlinux. A workspace is an ext4 image in the run dir
 * (removed with the VM) or, persisted, DATA/workspaces/ID.ext4 (kept and reused).
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nucleusd/backend-vm.h"

extern char **environ;

static int run_wait(const char *const *argv)
{
	pid_t pid;
	int st, r;

	r = posix_spawnp(&pid, argv[0], NULL, NULL, (char *const *)argv, environ);
	if (r != 0)
		return -r;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

void vm_image__make_workspace(struct vmb_job *j)
{
	char size[24];
	const char *mke2fs = access("/sbin/mke2fs", X_OK) == 0 ? "/sbin/mke2fs" : "mke2fs";
	const char *argv[] = {mke2fs,		"-q",	     "-F", "-t", "ext4", "-E",
			      "root_owner=0:0", j->vm->disk, size, NULL};
	int fd;

	if (j->size_mib == 0 || access(j->vm->disk, F_OK) == 0)
		return; /* no workspace, or a persisted one */
	fd = open(j->vm->disk, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)j->size_mib << 20) < 0) {
		j->err = -errno;
		snprintf(j->reason, sizeof(j->reason), "workspace image %.160s: %s", j->vm->disk,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	close(fd);
	snprintf(size, sizeof(size), "%uM", j->size_mib);
	j->err = run_wait(argv);
	if (j->err < 0) {
		unlink(j->vm->disk);
		snprintf(j->reason, sizeof(j->reason), "mke2fs of the workspace image failed");
	}
}

int nd_image__check(const char *image, struct nd_err *e)
{
	size_t n = image ? strlen(image) : 0;

	if (!image)
		return 0;
	if (n == 0 || n > 64 ||
	    !((image[0] >= 'a' && image[0] <= 'z') || (image[0] >= '0' && image[0] <= '9')))
		goto bad;
	for (size_t i = 0; i < n; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789._:-", image[i]))
			goto bad;
	return 0;
bad:
	return nd_err__set(e, -EINVAL, "bad_image",
			   "image names are 1-64 of [a-z0-9._:-], starting with a letter or digit");
}

/*
 * The image's kernel and initramfs. "default" (or none) is the daemon's own pair; any
 * other name is DATA_DIR/images/NAME/ with initramfs.cpio.gz and, optionally, vmlinux
 * (else the default kernel).
 */
int vm_image__resolve(struct vmb *b, const char *image, char kernel[PATH_MAX],
		      char initrd[PATH_MAX], struct nd_err *e)
{
	char dir[PATH_MAX];

	int r;

	kernel[0] = initrd[0] = '\0';
	r = nd_image__check(image, e);
	if (r < 0 || !image || strcmp(image, "default") == 0)
		return r;
	if ((size_t)snprintf(dir, sizeof(dir), "%s/images/%s", b->data_dir, image) >= sizeof(dir))
		return nd_err__set(e, -ENAMETOOLONG, "bad_image", "image path too long");
	snprintf(initrd, PATH_MAX, "%.*s/initramfs.cpio.gz", PATH_MAX - 32, dir);
	if (access(initrd, R_OK) < 0) {
		initrd[0] = '\0';
		return nd_err__set(e, -EINVAL, "bad_image",
				   "unknown image '%s' (no readable %s/initramfs.cpio.gz)", image,
				   dir);
	}
	snprintf(kernel, PATH_MAX, "%.*s/vmlinux", PATH_MAX - 32, dir);
	if (access(kernel, R_OK) < 0)
		kernel[0] = '\0';
	return 0;
}

int vm_image__workspace_path(struct vmb *b, struct vmb_vm *v, json_t *ws)
{
	bool persist = json_is_true(json_object_get(ws, "persist"));
	int n;

	if (persist)
		n = snprintf(v->disk, sizeof(v->disk), "%s/workspaces/%s.ext4", b->data_dir, v->id);
	else
		n = snprintf(v->disk, sizeof(v->disk), "%s/workspace.ext4", v->dir);
	v->disk_tmp = !persist;
	return n < 0 || (size_t)n >= sizeof(v->disk) ? -ENAMETOOLONG : 0;
}
