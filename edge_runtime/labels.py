"""The diagnosis vocabulary shared by training, export and the runtime."""

# Order is the classifier's output order: alphabetical, as HAM10000's `dx` codes.
HAM10000_CLASSES: tuple[str, ...] = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")

HAM10000_NAMES: dict[str, str] = {
    "akiec": "actinic keratosis / intraepithelial carcinoma",
    "bcc": "basal cell carcinoma",
    "bkl": "benign keratosis-like lesion",
    "df": "dermatofibroma",
    "mel": "melanoma",
    "nv": "melanocytic nevus",
    "vasc": "vascular lesion",
}

# The benign/malignant view: these three diagnoses are treated as malignant.
MALIGNANT_CLASSES: frozenset[str] = frozenset({"mel", "bcc", "akiec"})
