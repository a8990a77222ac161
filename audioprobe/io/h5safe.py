"""Opening an HDF5 file for reading only when nothing in it reads another file (needs nothing else of audioprobe,
so the model weights readers can use it too)."""

from __future__ import annotations

import h5py


class UnsafeHDF5Error(ValueError):
    """An HDF5 file whose reading would read another file."""


def open_h5(path) -> h5py.File:
    """``h5py.File(path, "r")``, refusing a file any part of which lives outside it.

    HDF5 lets a dataset keep its bytes in other files (external storage: any file, such as a secret in
    ``/tmp``, read as raw values; virtual datasets: slices of other HDF5 files) and lets a group link to an
    object in another file (external links). audioprobe writes none of these, so a file with one is
    refused, naming the file and the object, before anything of it is read.
    """
    file = h5py.File(path, "r")
    try:
        problems = outside_references(file)
        if problems:
            name, what = problems[0]
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise UnsafeHDF5Error(f"{path}: {name} is {what}{more}; audioprobe reads only data stored inside "
                                  "the file itself: delete the file and rerun the rule that makes it")
    except BaseException:
        file.close()
        raise
    return file


def outside_references(file: h5py.File) -> list[tuple[str, str]]:
    """(object, what it is) for every link or dataset of ``file`` whose reading would open another file.

    Walks every link without following soft or external ones (a soft link names a path inside the file,
    which the walk reaches through its hard links) and every dataset's creation properties.
    """
    problems = []

    def check_link(name, link):
        if isinstance(link, h5py.ExternalLink):
            problems.append((f"/{name}", f"an external link to {link.path!r} in the file {link.filename!r}"))
        elif not isinstance(link, (h5py.HardLink, h5py.SoftLink)):
            problems.append((f"/{name}", f"a link of an unknown class ({type(link).__name__})"))

    def check_object(name, item):
        if not isinstance(item, h5py.Dataset):
            return
        dcpl = item.id.get_create_plist()
        if dcpl.get_layout() == h5py.h5d.VIRTUAL:
            sources = sorted({source.file_name for source in item.virtual_sources()})
            problems.append((f"dataset /{name}", f"a virtual dataset (its data comes from {', '.join(sources)})"))
        elif dcpl.get_external_count():
            files = [dcpl.get_external(i)[0].decode(errors="replace") for i in range(dcpl.get_external_count())]
            problems.append((f"dataset /{name}", f"stored in other files (HDF5 external storage: {', '.join(files)})"))

    file.visititems_links(check_link)
    file.visititems(check_object)
    return problems
