"""The UCF101 folder layout that ``data/raw`` holds, whatever the source.

    data/raw/UCF-101/<Class>/v_<Class>_gGG_cCC.avi      (VIDEO_DIR)
    data/raw/ucfTrainTestlist/classInd.txt, trainlist0N.txt, testlist0N.txt   (LIST_DIR)

Names as in the official release (Soomro et al., "UCF101", CRCV-TR-12-01, 2012).
"""

VIDEO_DIR = "UCF-101"
LIST_DIR = "ucfTrainTestlist"
