/* SPDX-License-Identifier: Apache-2.0 */
/* cmdline.c - the guest kernel command line, bounded by what x86 Linux accepts. */
#include <errno.h>
#include <string.h>

#include "vmm/core.h"

void cmdline__init(struct cmdline *c)
{
	c->buf[0] = '\0';
	c->len = 0;
}

int cmdline__add(struct cmdline *c, const char *item)
{
	size_t n = strlen(item);
	size_t need = n + (c->len ? 1 : 0);

	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)item[i] < 0x20 || item[i] == 0x7f)
			return -EINVAL;
	if (need >= sizeof(c->buf) - c->len)
		return -E2BIG;
	if (c->len)
		c->buf[c->len++] = ' ';
	memcpy(c->buf + c->len, item, n);
	c->len += n;
	c->buf[c->len] = '\0';
	return 0;
}
