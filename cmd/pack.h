/* pack.h: fl-pack's subcommands that live outside fl-pack.c; each takes
 * its own argv (argv[0] is the subcommand's name) and returns an exit
 * status, or dies with one. */
#ifndef FL_CMD_PACK_H
#define FL_CMD_PACK_H

int pack_dataset(int argc, char **argv);	/* cmd/pack_data.c */
int pack_split(int argc, char **argv);
int pack_import(int argc, char **argv);		/* cmd/pack_interop.c */
int pack_export(int argc, char **argv);

#endif
